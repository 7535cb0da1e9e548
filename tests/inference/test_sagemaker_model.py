"""SageMaker model.tar.gz / model_algo-1: read without MXNet, write byte-compatible."""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zipfile

import numpy as np
import pytest

from fmkit.artifact import Artifact
from fmkit.model_store import load_model as load_artifact
from fmkit.errors import ArtifactError
from fmkit.inference.predictor import Predictor
from fmkit.io import sagemaker_model as sm
from inference.toy import make_artifact


def _member(path, name="model_algo-1") -> bytes:
    with tarfile.open(path) as tar:
        return tar.extractfile(name).read()


def test_real_sagemaker_model_reproduces_reported_test_metrics(sagemaker_u1):
    from fmkit.io.protobuf import decode_batch

    artifact = load_artifact(sagemaker_u1 / "model.tar.gz")
    assert artifact.predictor_type == "regressor" and artifact.link == "identity"
    assert (artifact.feature_dim, artifact.num_factors) == (2625, 64)
    assert artifact.w0[0] == pytest.approx(3.4399, abs=1e-4)
    assert artifact.metadata["hyperparameters"]["epochs"] == "50"
    test = decode_batch((sagemaker_u1 / "test.protobuf").read_bytes(), source="test.protobuf")
    assert test.n_rows == 20000
    scores = Predictor(artifact).predict_scores(test).astype(np.float64)
    err = scores - test.labels
    assert np.sqrt(np.mean(err**2)) == pytest.approx(1.00026300, abs=1e-6)
    assert np.mean(err**2) == pytest.approx(1.00052607, abs=1e-6)
    assert np.mean(np.abs(err)) == pytest.approx(0.79524813, abs=1e-6)
    np.testing.assert_allclose(scores[:5], [3.5394, 3.8539, 4.4569, 3.9180, 3.4213], atol=1e-4)
    fast = Predictor(artifact).predict_batch(test)["score"]
    np.testing.assert_allclose(fast, scores, rtol=1e-6)


def test_writing_sagemakers_model_back_gives_the_same_bytes(sagemaker_u1):
    original = _member(sagemaker_u1 / "model.tar.gz")
    when = zipfile.ZipFile(io.BytesIO(original)).infolist()[0].date_time
    artifact = sm.load(sagemaker_u1 / "model.tar.gz")
    assert sm.model_bytes(artifact, date_time=when) == original


def test_symbol_json_for_fmkit_defaults_matches_sagemakers_text(sagemaker_u1):
    original = zipfile.ZipFile(io.BytesIO(_member(sagemaker_u1 / "model.tar.gz")))
    params = json.loads(original.read("meta.json"))["training_parameters"]
    assert sm.symbol_json(2625, 64, "regressor", params) == original.read("symbol.json")


@pytest.mark.parametrize("predictor_type", ["regressor", "binary_classifier"])
def test_write_then_load_round_trip(tmp_path, rng, predictor_type):
    artifact = make_artifact(rng, predictor_type=predictor_type)
    path = sm.write(artifact, tmp_path / "model.tar.gz")
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["model_algo-1", "vocabulary.json", "seen.npz"]
    assert members[0].mode == 0o644
    archive = zipfile.ZipFile(io.BytesIO(_member(path)))
    assert [i.filename for i in archive.infolist()] == ["meta.json", "symbol.json", "params"]
    assert all(i.compress_type == zipfile.ZIP_STORED for i in archive.infolist())
    symbol = json.loads(archive.read("symbol.json"))
    head = symbol["nodes"][symbol["heads"][0][0]]["op"]
    assert head == ("LogisticRegressionOutput" if predictor_type == "binary_classifier"
                    else "LinearRegressionOutput")
    meta = json.loads(archive.read("meta.json"))
    assert meta["training_parameters"]["num_factors"] == "4"
    assert meta["label_names"] == ["out_label"]
    back = load_artifact(path)
    assert back.predictor_type == predictor_type and back.link == artifact.link
    np.testing.assert_array_equal(back.V, artifact.V)
    np.testing.assert_array_equal(back.w, artifact.w)
    np.testing.assert_array_equal(back.w0, artifact.w0)
    assert back.vocabulary == artifact.vocabulary
    assert (back.seen != artifact.seen).nnz == 0
    bare = sm.write(artifact, tmp_path / "model_algo-1")
    assert load_artifact(tmp_path).predictor_type == predictor_type  # folder lookup
    assert bare.read_bytes()[:4] == b"PK\x03\x04"


def test_predictor_type_from_symbol_head_without_meta_json(rng):
    artifact = make_artifact(rng, predictor_type="binary_classifier")
    data = sm.model_bytes(artifact)
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for name in ("symbol.json", "params"):
            out.writestr(name, src.read(name))
    back = sm.load_bytes(buf.getvalue())
    assert back.predictor_type == "binary_classifier" and back.link == "logit"


def _ndarray(arr, *, rows=None, dense=False):
    """An NDArray record: dense, or row-sparse holding only ``rows``."""
    arr = np.asarray(arr, "<f4")
    shape = struct.pack(f"<I{arr.ndim}q", arr.ndim, *arr.shape)
    if dense:
        return struct.pack("<Ii", 0xF993FAC9, 0) + shape + struct.pack("<iii", 1, 0, 0) + \
            arr.tobytes()
    rows = np.asarray(rows, "<i8")
    stored = arr[rows]
    sshape = struct.pack(f"<I{stored.ndim}q", stored.ndim, *stored.shape)
    return (struct.pack("<Ii", 0xF993FAC9, 1) + sshape + shape + struct.pack("<iiii", 1, 0, 0, 6)
            + struct.pack("<Iq", 1, rows.shape[0]) + stored.tobytes() + rows.tobytes())


def test_dense_and_partial_row_sparse_storage(rng):
    V = rng.normal(size=(5, 3)).astype(np.float32)
    w = rng.normal(size=(5, 1)).astype(np.float32)
    names = [b"arg:w1_weight", b"arg:w0_weight", b"arg:v"]
    blob = (struct.pack("<QQQ", 0x112, 0, 3) + _ndarray(w, dense=True)
            + _ndarray(np.array([0.5]), dense=True) + _ndarray(V, rows=[0, 3])
            + struct.pack("<Q", 3) + b"".join(struct.pack("<Q", len(n)) + n for n in names))
    arrays = sm.read_ndarray_list(blob)
    expected_v = np.zeros_like(V)
    expected_v[[0, 3]] = V[[0, 3]]
    np.testing.assert_array_equal(arrays["arg:v"], expected_v)
    np.testing.assert_array_equal(arrays["arg:w1_weight"], w)
    assert arrays["arg:w0_weight"].tolist() == [0.5]


def test_corrupt_artifacts_fail_with_location(tmp_path, rng):
    good = sm.write_ndarray_list({"arg:v": np.ones((4, 2), np.float32)}, row_sparse=("arg:v",))
    with pytest.raises(ArtifactError, match=r"params: truncated at byte \d+"):
        sm.read_ndarray_list(good[:-20], source="params")
    with pytest.raises(ArtifactError, match="byte 0: expected NDArray list magic"):
        sm.read_ndarray_list(b"\0" * 24, source="params")
    bad = bytearray(good)
    bad[24:28] = b"\1\2\3\4"
    with pytest.raises(ArtifactError, match="byte 24: array 0: expected NDArray magic"):
        sm.read_ndarray_list(bytes(bad), source="params")
    (tmp_path / "model_algo-1").write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match="not a ZIP archive"):
        load_artifact(tmp_path)
    tarball = tmp_path / "other" / "model.tar.gz"
    tarball.parent.mkdir()
    with tarfile.open(tarball, "w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ArtifactError, match="holds no model_algo-1"):
        load_artifact(tarball.parent)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="not a model"):
        load_artifact(tmp_path / "empty")


def test_mcmc_and_probit_models_are_refused_with_advice(rng):
    mcmc = make_artifact(rng, predictor_type="binary_classifier", samples=3, link="probit")
    with pytest.raises(ArtifactError, match="3 MCMC samples.*--format npz"):
        sm.model_bytes(mcmc)
    one = Artifact.from_point(0.0, np.zeros(3), np.zeros((3, 2)), "binary_classifier",
                              link="probit")
    with pytest.raises(ArtifactError, match="probit"):
        sm.model_bytes(one)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_GOOD = sm.write_ndarray_list(
    {"arg:w1_weight": np.ones((3, 1), np.float32), "arg:w0_weight": np.ones(1, np.float32),
     "arg:v": np.ones((3, 2), np.float32)}, row_sparse=("arg:w1_weight", "arg:v"))


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=200),
                 st.integers(0, len(_GOOD) - 1).map(lambda n: _GOOD[:n]),
                 st.tuples(st.integers(0, len(_GOOD) - 1), st.binary(min_size=1, max_size=8))
                 .map(lambda t: _GOOD[: t[0]] + t[1] + _GOOD[t[0] + len(t[1]):])))
def test_params_reader_raises_only_artifact_error(data):
    try:
        sm.read_ndarray_list(data)
    except ArtifactError:
        pass


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_model_reader_raises_only_artifact_error(data):
    blob = sm.model_bytes(Artifact.from_point(0.5, np.ones(3), np.ones((3, 2)), "regressor"),
                          date_time=(2020, 1, 1, 0, 0, 0))
    pos = data.draw(st.integers(0, len(blob) - 1))
    junk = data.draw(st.binary(min_size=1, max_size=16))
    for candidate in (blob[:pos], blob[:pos] + junk + blob[pos + len(junk):]):
        try:
            sm.load_bytes(candidate)
        except ArtifactError:
            pass


def test_training_parameters_of_an_fmkit_model(rng):
    artifact = make_artifact(rng)
    artifact.metadata["hyperparameters"] = {"epochs": 20, "bias_init_method": "mean",
                                            "use_linear": False, "seed": 3, "factors_lr": 0.05}
    params = sm.training_parameters(artifact)
    assert list(params)[-3:] == ["feature_dim", "num_factors", "predictor_type"]
    assert params["epochs"] == "20" and params["factors_lr"] == "0.05"
    assert params["use_linear"] == "false" and params["bias_init_method"] == "normal"
    assert "seed" not in params and all(isinstance(v, str) for v in params.values())
