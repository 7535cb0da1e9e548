"""CLI: export, recommend, similar, transform, serve errors, deploy / endpoints."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
from helpers.cli import run_cli as run
from inference.toy import ITEMS, make_artifact

from fmkit.artifact import save
from fmkit.model_store import load_model as load
from fmkit.io.protobuf import encode_batch
from fmkit.sparse import SparseBatch


@pytest.fixture
def model_dir(tmp_path, rng):
    path = tmp_path / "fm"
    save(make_artifact(rng, predictor_type="binary_classifier"), path)
    return path


def test_export_sagemaker_and_npz(capsys, tmp_path, model_dir):
    code, out, _ = run(capsys, "export", "--model-dir", model_dir, "--format", "sagemaker",
                       "--output", tmp_path / "exp")
    assert code == 0 and out.strip() == str(tmp_path / "exp" / "model.tar.gz")
    with tarfile.open(tmp_path / "exp" / "model.tar.gz") as tar:
        assert tar.getnames()[0] == "model_algo-1"
    original, back = load(model_dir), load(tmp_path / "exp" / "model.tar.gz")
    np.testing.assert_array_equal(original.V, back.V)
    code, out, _ = run(capsys, "export", "--model-dir", model_dir, "--format", "npz",
                       "--output", tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        assert z["V"].shape == (1, 23, 4) and z["item_ids"].tolist() == ITEMS
        assert z["item_embeddings"].shape == (10, 4) and z["user_embeddings"].shape == (6, 4)
        assert json.loads(str(z["vocabulary_json"]))["item_field"] == "item"
    code, _, err = run(capsys, "export", "--model-dir", model_dir, "--format", "onnx",
                       "--output", tmp_path / "x")
    assert code == 2 and "export format must be one of sagemaker, npz" in err


def test_recommend_and_similar(capsys, tmp_path, model_dir):
    from fmkit.inference.recommend import Recommender

    rec = Recommender(load(model_dir))
    (tmp_path / "ex.txt").write_text("# never these\ni0\n")
    code, out, _ = run(capsys, "recommend", "--model-dir", model_dir, "--user", "u2", "-k", "3",
                       "--exclude", tmp_path / "ex.txt", "--context", "device=web")
    assert code == 0
    got = json.loads(out)
    expected = rec.recommend("u2", k=3, exclude=["i0"], context={"device": "web"})
    assert got["user"] == "u2"
    assert [r["item"] for r in got["recommendations"]] == expected.items
    (tmp_path / "users.txt").write_text("u0\nnobody\n")
    code, out, _ = run(capsys, "recommend", "--model-dir", model_dir, "--users",
                       tmp_path / "users.txt", "-k", "2")
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["user"] for x in lines] == ["u0", "nobody"]
    assert lines[1]["cold_start"] == "popularity"
    code, out, _ = run(capsys, "similar", "--model-dir", model_dir, "--item", "i4", "-k", "2")
    assert [x["item"] for x in json.loads(out)["similar"]] == rec.similar("i4", k=2).items
    code, _, err = run(capsys, "recommend", "--model-dir", model_dir)
    assert code == 2 and "exactly one of --user" in err


def test_transform_cli(capsys, tmp_path, model_dir, rng):
    X = (rng.random((5, 23)) < 0.2).astype(np.float32)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "part.rec").write_bytes(encode_batch(SparseBatch.from_matrix(X)))
    code, out, _ = run(capsys, "transform", "--model-dir", model_dir, "--input", tmp_path / "in",
                       "--output", tmp_path / "out")
    assert code == 0 and json.loads(out)["records"] == 5
    lines = (tmp_path / "out" / "part.rec.out").read_text().splitlines()
    assert len(lines) == 5 and all("predicted_label" in x for x in lines)


def test_serve_fails_clearly_for_missing_or_corrupt_models(capsys, tmp_path):
    code, _, err = run(capsys, "serve", "--model-dir", tmp_path / "missing")
    assert code == 2 and "does not exist" in err and "Traceback" not in err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.tar.gz").write_bytes(b"\x1f\x8b garbage")
    code, _, err = run(capsys, "serve", "--model-dir", tmp_path / "bad")
    assert code == 2 and "not a readable tar.gz" in err
    code, _, err = run(capsys, "serve", "--model-dir", tmp_path, "--name", "bad_name!")
    assert code == 2 and "endpoint name" in err


def test_deploy_list_delete(capsys, model_dir):
    code, out, err = run(capsys, "deploy", "--model-dir", model_dir, "--name", "toy-1")
    assert code == 0, err
    record = json.loads(out)
    assert record["status"] == "InService" and record["url"].startswith("http://127.0.0.1:")
    try:
        code, out, _ = run(capsys, "endpoints", "list", "--json")
        rows = json.loads(out)
        assert [(r["name"], r["status"], r["model"]) for r in rows] == \
            [("toy-1", "InService", str(model_dir.resolve()))]
        code, out, _ = run(capsys, "endpoints", "list")
        assert out.splitlines()[0].split() == ["NAME", "URL", "MODEL", "STATUS", "STARTED"]
        code, _, err = run(capsys, "deploy", "--model-dir", model_dir, "--name", "toy-1")
        assert code == 2 and "delete it first" in err
        import urllib.request

        req = urllib.request.Request(
            record["url"] + "/endpoints/toy-1/invocations", method="POST",
            data=json.dumps({"instances": [{"features": [0.0] * 23}]}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.loads(resp.read())["predictions"][0]["predicted_label"] in (0.0, 1.0)
    finally:
        code, out, _ = run(capsys, "endpoints", "delete", "toy-1")
    assert code == 0 and "deleted endpoint toy-1" in out
    from fmkit.jobs.endpoints import ping

    assert not ping(record["url"], timeout_s=0.5)
    code, out, _ = run(capsys, "endpoints", "list", "--json")
    assert json.loads(out) == []
    code, _, err = run(capsys, "endpoints", "delete", "toy-1")
    assert code == 2 and "no endpoint named 'toy-1'" in err


def test_deploy_of_a_corrupt_model_reports_the_servers_error(capsys, tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metadata.json").write_text("{")
    code, _, err = run(capsys, "deploy", "--model-dir", tmp_path / "bad", "--name", "broken")
    assert code == 2 and "exited with code 2" in err and "metadata.json" in err
