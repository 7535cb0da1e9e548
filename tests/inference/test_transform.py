"""Batch transform: SageMaker's split, batching and output rules, streaming."""

from __future__ import annotations

import json

import fsspec
import numpy as np
import pytest
import scipy.sparse as sp

from fmkit.errors import ConfigError, DataError
from fmkit.inference.predictor import Predictor
from fmkit.inference.transform import transform
from fmkit.io.protobuf import decode_label_records, encode_batch
from fmkit.sparse import SparseBatch
from inference.toy import make_artifact


@pytest.fixture
def predictor(rng):
    return Predictor(make_artifact(rng, predictor_type="binary_classifier"))


def _rows(rng, n):
    X = sp.random(n, 23, density=0.2, format="csr", random_state=int(rng.integers(1 << 30)),
                  dtype=np.float32)
    return X


def _jsonl(X):
    lines = []
    for r in range(X.shape[0]):
        row = X[r]
        lines.append(json.dumps({"data": {"features": {
            "keys": row.indices.tolist(), "shape": [23], "values": row.data.tolist()}}}))
    return ("\n".join(lines) + "\n").encode()


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("strategy,limit", [("MultiRecord", 6 << 20), ("MultiRecord", 300),
                                            ("SingleRecord", 6 << 20)])
def test_recordio_folder_one_out_per_input_in_order(tmp_path, rng, predictor, strategy, limit):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    data = {"a.rec": _rows(rng, 37), "sub/b.rec": _rows(rng, 5)}
    for name, X in data.items():
        (src / name).write_bytes(encode_batch(SparseBatch.from_matrix(X)))
    (src / "_SUCCESS").write_bytes(b"")
    summary = transform(predictor, str(src), str(tmp_path / "out"), batch_strategy=strategy,
                        max_payload_bytes=limit)
    assert summary.outputs == [str(tmp_path / "out" / "a.rec.out"),
                               str(tmp_path / "out" / "sub" / "b.rec.out")]
    assert summary.records == 42
    if strategy == "SingleRecord":
        assert summary.requests == 42
    elif limit == 300:
        assert summary.requests > 2
    else:
        assert summary.requests == 2
    for name, X in data.items():
        got = _read_jsonl(tmp_path / "out" / f"{name}.out")
        expected = predictor.predict_scores(X)
        assert [list(g) for g in got] == [["score", "predicted_label"]] * X.shape[0]
        np.testing.assert_allclose([g["score"] for g in got], expected, rtol=1e-5)
        assert [g["predicted_label"] for g in got] == [float(s >= 0.5) for s in
                                                       np.asarray([g["score"] for g in got])]


def test_jsonlines_lines_and_recordio_accept(tmp_path, rng, predictor):
    X = _rows(rng, 12)
    (tmp_path / "x.jsonl").write_bytes(_jsonl(X).replace(b"\n", b"\n\n", 1))  # a blank line
    transform(predictor, str(tmp_path / "x.jsonl"), str(tmp_path / "o1"),
              content_type="application/jsonlines", accept="application/x-recordio-protobuf",
              batch_strategy="SingleRecord", assemble_with="None")
    records = decode_label_records((tmp_path / "o1" / "x.jsonl.out").read_bytes())
    np.testing.assert_allclose(records["score"], predictor.predict_scores(X), rtol=1e-5)


def test_split_none_json_and_assemble_line(tmp_path, rng, predictor):
    X = _rows(rng, 3)
    body = {"instances": [{"features": X[r].toarray()[0].tolist()} for r in range(3)]}
    (tmp_path / "req.json").write_text(json.dumps(body))
    transform(predictor, str(tmp_path / "req.json"), str(tmp_path / "o"),
              content_type="application/json", accept="application/json")
    text = (tmp_path / "o" / "req.json.out").read_text()
    assert text.endswith("]}\n") and text.startswith('{"predictions": [{"score": ')
    np.testing.assert_allclose([p["score"] for p in json.loads(text)["predictions"]],
                               predictor.predict_scores(X), rtol=1e-5)


def test_fsspec_uris_stream_through(rng, predictor):
    X = _rows(rng, 4)
    with fsspec.open("memory://fmkit-test/in/part-0.jsonl", "wb") as fh:
        fh.write(_jsonl(X))
    summary = transform(predictor, "memory://fmkit-test/in", "memory://fmkit-test/out",
                        content_type="application/jsonlines")
    assert summary.outputs == ["memory://fmkit-test/out/part-0.jsonl.out"]
    with fsspec.open(summary.outputs[0], "rb") as fh:
        lines = fh.read().decode().splitlines()
    assert len(lines) == 4


def test_bad_record_names_file_and_line_and_leaves_no_output(tmp_path, rng, predictor):
    good = _jsonl(_rows(rng, 3)).decode()
    (tmp_path / "bad.jsonl").write_text(good + '{"features": [1, 2]}\n')
    with pytest.raises(DataError, match=r"bad.jsonl, line 4, features: dense features have "
                                        r"length 2"):
        transform(predictor, str(tmp_path / "bad.jsonl"), str(tmp_path / "o"),
                  content_type="application/jsonlines", batch_strategy="SingleRecord")
    assert not list((tmp_path / "o").glob("*"))
    (tmp_path / "blank.jsonl").write_text("\n" + good + "\n\n" + "[1, 2]\n")
    with pytest.raises(DataError, match=r"blank.jsonl, line 7: dense features"):
        transform(predictor, str(tmp_path / "blank.jsonl"), str(tmp_path / "o"),
                  content_type="application/jsonlines")
    with pytest.raises(DataError, match="over the payload limit"):
        transform(predictor, str(tmp_path / "bad.jsonl"), str(tmp_path / "o"),
                  content_type="application/jsonlines", max_payload_bytes=10)
    with pytest.raises(ConfigError, match="split_type"):
        transform(predictor, str(tmp_path), str(tmp_path / "o"), split_type="Lines")
    with pytest.raises(DataError, match="missing: no such file or folder"):
        transform(predictor, str(tmp_path / "missing"), str(tmp_path / "o"))
