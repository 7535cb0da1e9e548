"""s3:// model folders, saved and loaded against an S3 server (moto) on 127.0.0.1.

Every place that takes a model directory loads through :func:`fmkit.model_store.load_model`:
the server, Predictor.load, recommendations, batch transform, export and evaluate.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import fmkit.io as fio
from fmkit.artifact import save
from fmkit.errors import ArtifactError
from fmkit.inference.predictor import Predictor
from fmkit.inference.recommend import Recommender, load_recommender
from fmkit.io import paths, sagemaker_model
from fmkit.model_store import load_model
from fmkit.serving.app import load_predictor
from fmkit.sparse import SparseBatch
from helpers.cli import run_cli
from inference.toy import FEATURE_DIM, make_artifact
from serving.conftest import client_for

ROWS = np.eye(FEATURE_DIM, dtype=np.float32)[:6] + np.eye(FEATURE_DIM, k=6,
                                                          dtype=np.float32)[:6]


def _keys(uri: str) -> list[str]:
    fs, base = paths.filesystem(uri)
    fs.invalidate_cache()
    return sorted(k[len(base.rstrip("/")) + 1:] for k in fs.find(base))


def test_save_to_s3_then_every_loader_reads_it(s3, rng):
    art = make_artifact(rng, predictor_type="binary_classifier")
    uri = f"{s3}/models/fm"
    assert save(art, uri, extra_files={"metrics.json": b'{"test:rmse": 1.0}'}) == uri
    assert _keys(uri) == ["metadata.json", "metrics.json", "seen.npz", "vocabulary.json",
                          "weights.npz"]
    want = Predictor(art).predict_scores(ROWS)
    for loaded in (Predictor(load_model(uri)), Predictor.load(uri + "/"), load_predictor(uri)):
        np.testing.assert_allclose(loaded.predict_scores(ROWS), want, rtol=1e-6)
    rec = load_recommender(uri)
    assert rec.recommend("u1", k=3) == Recommender(art).recommend("u1", k=3)


def test_resaving_on_s3_leaves_nothing_of_the_old_model(s3, rng):
    uri = f"{s3}/models/fm"
    save(make_artifact(rng), uri, extra_files={"notes.txt": b"old"})
    art = make_artifact(rng)
    art.vocabulary = None
    art.seen = None
    save(art, uri)
    assert _keys(uri) == ["metadata.json", "weights.npz"]
    assert load_model(uri).vocabulary is None
    # a sibling prefix that starts with the same letters is not part of the folder
    save(art, f"{s3}/models/fm2")
    save(art, uri)
    assert _keys(f"{s3}/models/fm2") == ["metadata.json", "weights.npz"]


def test_an_s3_folder_without_metadata_is_refused_naming_the_uri(s3, rng):
    uri = f"{s3}/models/half"
    save(make_artifact(rng), uri)
    fs, base = paths.filesystem(uri)
    fs.rm_file(f"{base}/metadata.json")  # what a reader sees while a save uploads
    with pytest.raises(ArtifactError, match=r"s3://fmkit-test/models/half has no "
                       r"metadata.json: the model folder is incomplete"):
        load_model(uri)
    with pytest.raises(ArtifactError, match=r"model s3://fmkit-test/models/none does not "
                       "exist"):
        load_model(f"{s3}/models/none")


def test_sagemaker_tarball_on_s3_as_object_or_folder(s3, rng, tmp_path):
    art = make_artifact(rng)
    sagemaker_model.write(art, tmp_path / "model.tar.gz")
    paths.upload_dir(str(tmp_path), f"{s3}/job/output")
    want = Predictor(art).predict_scores(ROWS)
    for uri in (f"{s3}/job/output/model.tar.gz", f"{s3}/job/output", f"{s3}/job"):
        np.testing.assert_allclose(Predictor(load_model(uri)).predict_scores(ROWS), want,
                                   rtol=1e-6)


def test_server_serves_an_s3_model(s3, rng):
    art = make_artifact(rng, predictor_type="binary_classifier")
    save(art, f"{s3}/models/fm")
    with client_for(model_dir=f"{s3}/models/fm") as client:
        assert client.get("/ping").status_code == 200
        body = {"instances": [{"features": ROWS[0].tolist()}]}
        r = client.post("/invocations", json=body)
        assert r.status_code == 200
        assert r.json()["predictions"][0]["score"] == pytest.approx(
            float(Predictor(art).predict_scores(ROWS[:1])[0]), rel=1e-6)
        assert client.post("/recommend", json={"user": "u2", "k": 2}).status_code == 200


def test_cli_commands_take_s3_model_dirs(s3, rng, tmp_path, capsys):
    """recommend, transform, export and evaluate with --model-dir s3://... (the CLI calls
    the loaders above)."""
    art = make_artifact(rng)
    uri = f"{s3}/models/fm"
    save(art, uri)
    code, out, err = run_cli(capsys, "recommend", "--model-dir", uri, "--user", "u1", "-k", "2")
    assert code == 0, err
    assert json.loads(out)["recommendations"] == Recommender(art).recommend(
        "u1", k=2).to_dict()["recommendations"]
    code, out, err = run_cli(capsys, "export", "--model-dir", uri, "--format", "sagemaker",
                             "--output", str(tmp_path / "exp"))
    assert code == 0, err
    assert load_model(tmp_path / "exp" / "model.tar.gz").feature_dim == FEATURE_DIM
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.csv").write_text(
        "\n".join(",".join(f"{v:g}" for v in row) for row in ROWS) + "\n")
    code, out, err = run_cli(capsys, "transform", "--model-dir", uri, "--input",
                             str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                             "--content-type", "text/csv")
    assert code == 0, err
    lines = (tmp_path / "out" / "x.csv.out").read_text().splitlines()
    np.testing.assert_allclose([json.loads(x)["score"] for x in lines],
                               Predictor(art).predict_scores(ROWS), rtol=1e-5)
    nz = ROWS.nonzero()
    batch = SparseBatch.from_arrays(nz[1], np.searchsorted(nz[0], np.arange(7)), ROWS[nz],
                                    labels=np.arange(6, dtype=np.float32))
    fio.write(str(tmp_path / "test.libsvm"), batch)
    code, out, err = run_cli(capsys, "evaluate", "--model-dir", uri, "--test",
                             str(tmp_path / "test.libsvm"))
    assert code == 0, err
    assert "rmse" in out
