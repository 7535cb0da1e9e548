"""Request parsing (every instance form of spec 6.2) and byte-exact responses (6.3)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fmkit.errors import DataError
from fmkit.io.protobuf import encode_batch
from fmkit.io import codecs
from fmkit.sparse import SparseBatch

F = 6
DENSE = [0.0, 1.0, 0.0, 0.0, 2.5, 0.0]
FORMS = [
    {"features": DENSE},
    {"data": {"features": {"values": DENSE}}},
    {"data": {"features": {"keys": [4, 1], "shape": [F], "values": [2.5, 1]}}},
    DENSE,
    {"data": {"features": DENSE}, "configuration": {"k": 1}},
]


def _dense(batch: SparseBatch) -> np.ndarray:
    return batch.to_csr(F).toarray()


def test_every_instance_form_gives_the_same_row():
    body = json.dumps({"instances": FORMS}).encode()
    batch = codecs.decode_request(body, "Application/JSON; charset=utf-8", F)
    assert batch.n_rows == len(FORMS)
    np.testing.assert_array_equal(_dense(batch), np.tile(DENSE, (len(FORMS), 1)))
    lines = "\n".join(json.dumps(f) for f in FORMS) + "\n\n"
    batch = codecs.decode_request(lines.encode(), "application/jsonlines", F)
    np.testing.assert_array_equal(_dense(batch), np.tile(DENSE, (len(FORMS), 1)))


def test_csv_and_recordio_requests():
    batch = codecs.decode_request(b"0,1,0,0,2.5,0\n\n0,0,0,0,0,1\n", "text/csv", F)
    np.testing.assert_array_equal(_dense(batch)[0], DENSE)
    assert _dense(batch)[1, 5] == 1
    rec = encode_batch(SparseBatch.from_matrix(np.array([DENSE], np.float32)))
    batch = codecs.decode_request(rec, "application/x-recordio-protobuf", F)
    np.testing.assert_array_equal(_dense(batch)[0], DENSE)
    wide = encode_batch(SparseBatch.from_matrix(np.ones((1, F + 1), np.float32)))
    with pytest.raises(DataError, match="feature length 7 .* feature_dim=6"):
        codecs.decode_request(wide, "application/x-recordio-protobuf", F)


def test_duplicate_keys_add_up_and_ints_are_accepted():
    inst = {"data": {"features": {"keys": [1, 1, 3], "shape": [F], "values": [1, 2, 1]}}}
    batch = codecs.decode_request(json.dumps({"instances": [inst]}).encode(), "application/json", F)
    assert _dense(batch)[0].tolist() == [0, 3, 0, 1, 0, 0]


@pytest.mark.parametrize("body,message", [
    (b"{bad", "malformed JSON"),
    (b"", "request body is empty"),
    (b'{"rows": []}', '"instances" list'),
    (b'{"instances": {}}', '"instances" must be a list'),
    (b'{"instances": [{"data": {"features": {"keys": [1], "values": [1]}}}]}',
     r'instance 0, data.features: sparse features need "shape"'),
    (b'{"instances": [{"data": {"features": {"keys": [6], "shape": [6], "values": [1]}}}]}',
     r"instance 0, data.features.keys\[0\] = 6 is out of range"),
    (b'{"instances": [{"data": {"features": {"keys": [-1], "shape": [6], "values": [1]}}}]}',
     "out of range"),
    (b'{"instances": [{"data": {"features": {"keys": [1], "shape": [7], "values": [1]}}}]}',
     r"shape is \[7\] but the model was trained with feature_dim=6"),
    (b'{"instances": [{"data": {"features": {"keys": [1, 2], "shape": [6], "values": [1]}}}]}',
     "2 keys but 1 values"),
    (b'{"instances": [{"data": {"features": {"keys": ["a"], "shape": [6], "values": [1]}}}]}',
     "expected an integer key"),
    (b'{"instances": [{"features": [1, 2]}]}', "length 2 but the model .* feature_dim=6"),
    (b'{"instances": [{"features": [1, 2, "x", 0, 0, 0]}]}', r"features\[2\]: expected a number"),
    (b'{"instances": [{"features": [1, 2, null, 0, 0, 0]}]}', "expected a number"),
    (b'{"instances": [{"features": [1, 2, [3], 0, 0, 0]}]}', "expected a number"),
    (b'{"instances": [{"foo": 1}]}', 'expected "features" or "data"'),
    (b'{"instances": ["x"]}', "expected an object"),
    (b'{"instances": [{"data": {"features": {"keys": [1], "shape": [6], "values": [1e999]}}}]}',
     "infinity"),
])
def test_malformed_json_requests_name_the_problem(body, message):
    with pytest.raises(DataError, match=message):
        codecs.decode_request(body, "application/json", F)


def test_jsonlines_and_csv_errors_name_the_line():
    with pytest.raises(DataError, match="line 3: malformed JSON"):
        codecs.decode_request(b'[0,0,0,0,0,0]\n\n{x\n', "application/jsonlines", F)
    with pytest.raises(DataError, match="line 2: 'abc' is not a number"):
        codecs.decode_request(b"0,0,0,0,0,0\n1,abc,0,0,0,0\n", "text/csv", F)


def test_unsupported_content_type():
    with pytest.raises(codecs.UnsupportedMediaTypeError, match="text/plain"):
        codecs.decode_request(b"x", "text/plain", F)
    with pytest.raises(codecs.UnsupportedMediaTypeError, match="none"):
        codecs.decode_request(b"x", None, F)


def test_response_bodies_are_byte_exact():
    reg = {"score": np.array([3.5394201278686523], np.float32)}
    assert codecs.encode_response(reg, codecs.JSON) == \
        b'{"predictions": [{"score": 3.5394201278686523}]}'
    binary = {"score": np.array([0.5895045399665833, 0.25], np.float32),
              "predicted_label": np.array([1.0, 0.0], np.float32)}
    assert codecs.encode_response(binary, codecs.JSON) == (
        b'{"predictions": [{"score": 0.5895045399665833, "predicted_label": 1.0}, '
        b'{"score": 0.25, "predicted_label": 0.0}]}')
    assert codecs.encode_response(binary, codecs.JSONLINES) == (
        b'{"score": 0.5895045399665833, "predicted_label": 1.0}\n'
        b'{"score": 0.25, "predicted_label": 0.0}\n')
    assert codecs.encode_response({"score": np.zeros(0, np.float32)}, codecs.JSON) == \
        b'{"predictions": []}'
    example = {"score": np.array([0.75], np.float32),
               "predicted_label": np.array([1.0], np.float32)}
    assert codecs.encode_response(example, codecs.RECORDIO) == bytes.fromhex(
        "0a23d7ce30000000"
        "12110a0573636f7265120812060a040000403f"
        "121b0a0f7072656469637465645f6c6162656c120812060a040000803f")
    with pytest.raises(DataError, match="not finite"):
        codecs.encode_response({"score": np.array([np.inf], np.float32)}, codecs.JSON)


@pytest.mark.parametrize("accept,batch,expected", [
    (None, False, codecs.JSON), ("*/*", False, codecs.JSON), (None, True, codecs.JSONLINES),
    ("*/*", True, codecs.JSONLINES), ("application/json", True, codecs.JSON),
    ("application/jsonlines; charset=utf-8", False, codecs.JSONLINES),
    ("text/html, application/x-recordio-protobuf", False, codecs.RECORDIO),
    ("text/csv", False, codecs.JSON),
])
def test_accept_negotiation(accept, batch, expected):
    assert codecs.response_type(accept, batch=batch) == expected


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.floats(allow_nan=False)
    | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["instances", "data", "features", "keys", "shape", "values", "x"]),
        inner, max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(codecs.REQUEST_TYPES),
       st.one_of(st.binary(max_size=120), _JSONISH.map(lambda v: json.dumps(v).encode()),
                 _JSONISH.map(lambda v: json.dumps({"instances": [v]}).encode())))
def test_arbitrary_bodies_raise_only_data_error(content_type, body):
    try:
        batch = codecs.decode_request(body, content_type, F)
    except DataError:
        return
    batch.validate(feature_dim=F)  # whatever parses is a valid batch
