"""Request and response bodies of inference (spec sections 6.2 and 6.3), numpy only.

Data-layer code shared by the model server (:mod:`fmkit.serving`) and batch transform
(:mod:`fmkit.inference.transform`).

Requests (``Content-Type``, media type only, case ignored):

- ``application/json``: ``{"instances": [<instance>, ...]}``;
- ``application/jsonlines``: one ``<instance>`` per non-empty line;
- ``text/csv``: one dense row of ``feature_dim`` numbers per line, no label column;
- ``application/x-recordio-protobuf``: framed Records (labels ignored).

An ``<instance>`` is any of::

    {"features": [0.0, 1.0, ...]}                                   dense
    {"data": {"features": {"values": [0.0, 1.0, ...]}}}             dense
    {"data": {"features": {"keys": [0, 948], "shape": [2625], "values": [1, 1]}}}   sparse
    [0.0, 1.0, ...]  and  {"data": {"features": [0.0, 1.0, ...]}}   dense

Sparse keys need not be sorted; duplicates add up; ``shape`` is required and must equal the
model's feature_dim. An optional ``"configuration"`` member is ignored.

Responses (``Accept``): ``{"predictions": [{"score": 3.5394201278686523}]}`` (JSON, the
default), one prediction per line (JSON Lines), or one Record per row (recordio). Binary
models add ``"predicted_label": 1.0``. Scores are float32 values written as JSON doubles,
with the spacing of Python's ``json.dumps``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from fmkit.errors import DataError, FMError
from fmkit.sparse import SparseBatch

JSON = "application/json"
JSONLINES = "application/jsonlines"
CSV = "text/csv"
RECORDIO = "application/x-recordio-protobuf"

REQUEST_TYPES = (JSON, JSONLINES, CSV, RECORDIO)
RESPONSE_TYPES = (JSON, JSONLINES, RECORDIO)
_ALIASES = {
    "application/x-jsonlines": JSONLINES,
    "application/jsonl": JSONLINES,
    "application/json-lines": JSONLINES,
    "application/x-ndjson": JSONLINES,
    "text/x-csv": CSV,
    "application/csv": CSV,
    "application/x-protobuf": RECORDIO,
}


class UnsupportedMediaTypeError(FMError):
    """The request's Content-Type is not one the server reads (HTTP 415)."""


class PayloadTooLargeError(FMError):
    """The request body is over the configured limit (HTTP 413)."""


def media_type(header: str | None) -> str:
    """Return the media type of a Content-Type or Accept value: lower case, no parameters."""
    if not header:
        return ""
    base = header.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def response_type(accept: str | None, *, batch: bool = False) -> str:
    """Pick the response format for an ``Accept`` header (spec 6.3).

    The first supported type listed wins; a missing header or ``*/*`` gives JSON (JSON
    Lines when ``batch``, as in SageMaker batch transform); only unsupported types give JSON.
    """
    if not accept or accept.strip() == "*/*":
        return JSONLINES if batch else JSON
    for part in accept.split(","):
        kind = media_type(part)
        if kind in RESPONSE_TYPES:
            return kind
    return JSON


# ---------------------------------------------------------------------------------- requests
def decode_request(body: bytes, content_type: str | None, feature_dim: int, *,
                   line_offset: int = 0) -> SparseBatch:
    """Parse a request body into validated rows for a model with ``feature_dim`` features.

    ``line_offset`` is added to line numbers in messages (batch transform passes the
    position of the body in its file).

    Raises
    ------
    UnsupportedMediaTypeError
        ``content_type`` is none of :data:`REQUEST_TYPES`.
    DataError
        Malformed body, wrong feature length, missing or wrong ``shape``, a key out of
        range, or a non-numeric or non-finite value; the message names the instance
        (JSON), line (JSON Lines, CSV) or record (recordio).
    """
    kind = media_type(content_type)
    # the JSON, JSON Lines and CSV parsers check keys and values row by row themselves
    if kind == JSON:
        return decode_json(body, feature_dim)
    if kind == JSONLINES:
        return decode_jsonlines(body, feature_dim, line_offset=line_offset)
    if kind == CSV:
        return decode_csv(body, feature_dim, line_offset=line_offset)
    if kind == RECORDIO:
        batch = decode_recordio(body, feature_dim)
    else:
        shown = content_type or "(none)"
        raise UnsupportedMediaTypeError(
            f"Content-Type {shown!r} is not supported; use one of {', '.join(REQUEST_TYPES)}."
        )
    batch.validate(feature_dim=feature_dim, source="request")
    return batch


def _loads(text: bytes) -> Any:
    try:
        import orjson

        return orjson.loads(text)
    except ImportError:  # pragma: no cover - orjson is part of the serve extra
        import json

        return json.loads(text)


def _json_error(exc: Exception) -> str:
    return str(exc).split("\n", 1)[0]


def parse_json(body: bytes) -> Any:
    """Parse a JSON body; raise DataError("malformed JSON: ...") with the parser's position."""
    try:
        return _loads(body)
    except ValueError as exc:
        raise DataError(f"malformed JSON: {_json_error(exc)}.") from None


def decode_json(body: bytes, feature_dim: int) -> SparseBatch:
    """Parse ``{"instances": [...]}``; see the module docstring for instance forms."""
    if not body.strip():
        raise DataError("request body is empty; send {\"instances\": [...]}.")
    doc = parse_json(body)
    if isinstance(doc, dict) and "instances" in doc:
        instances = doc["instances"]
    else:
        raise DataError('JSON body must be an object with an "instances" list, as '
                        '{"instances": [{"features": [...]}]}.')
    if not isinstance(instances, list):
        raise DataError(f'"instances" must be a list; got {type(instances).__name__}.')
    rows = _Rows(feature_dim)
    for i, instance in enumerate(instances):
        rows.add(instance, f"instance {i}")
    return rows.batch()


def decode_jsonlines(body: bytes, feature_dim: int, *, line_offset: int = 0) -> SparseBatch:
    """Parse one instance per non-empty line; errors name the 1-based line number."""
    rows = _Rows(feature_dim)
    for number, line in enumerate(body.split(b"\n"), start=1 + line_offset):
        if not line.strip():
            continue
        try:
            instance = _loads(line)
        except ValueError as exc:
            raise DataError(f"line {number}: malformed JSON: {_json_error(exc)}.") from None
        rows.add(instance, f"line {number}")
    return rows.batch()


def decode_csv(body: bytes, feature_dim: int, *, line_offset: int = 0) -> SparseBatch:
    """Parse dense CSV rows (no label, no header) of ``feature_dim`` numbers each."""
    rows = _Rows(feature_dim)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"CSV body is not UTF-8 (byte {exc.start}).") from None
    for number, line in enumerate(text.split("\n"), start=1 + line_offset):
        line = line.strip()
        if not line:
            continue
        cells = line.split(",")
        try:
            values = [float(c) for c in cells]
        except ValueError:
            bad = next(c for c in cells if not _is_float(c))
            raise DataError(f"line {number}: {bad.strip()!r} is not a number.") from None
        rows.add_dense(values, f"line {number}")
    return rows.batch()


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def decode_recordio(body: bytes, feature_dim: int) -> SparseBatch:
    """Parse framed recordIO-protobuf Records with :func:`fmkit.io.protobuf.decode_batch`."""
    from fmkit.io.protobuf import decode_batch

    batch = decode_batch(body, source="request")
    if batch.feature_dim is not None and batch.feature_dim != feature_dim:
        raise DataError(
            f"request: records have feature length {batch.feature_dim} but the model was "
            f"trained with feature_dim={feature_dim}."
        )
    return batch.with_feature_dim(feature_dim)


class _Rows:
    """Accumulates instances as CSR arrays, checking each against ``feature_dim``.

    Sparse instances stay Python lists until :meth:`batch` (one conversion for the whole
    request: a single small instance costs microseconds); dense rows become arrays at once.
    """

    def __init__(self, feature_dim: int) -> None:
        self.feature_dim = feature_dim
        self.keys: list[list[Any] | npt.NDArray[np.int64]] = []
        self.values: list[list[Any] | npt.NDArray[np.float32]] = []
        self.lengths: list[int] = []

    def batch(self) -> SparseBatch:
        offsets = np.zeros(len(self.lengths) + 1, np.int64)
        if self.lengths:
            np.cumsum(self.lengths, out=offsets[1:])
        if not self.keys:
            keys = np.zeros(0, np.int64)
            values = np.zeros(0, np.float32)
        elif all(isinstance(k, list) for k in self.keys):
            keys = np.array(list(itertools.chain.from_iterable(self.keys)), dtype=np.int64)
            values = np.array(list(itertools.chain.from_iterable(self.values)), dtype=np.float32)
        else:
            keys = np.concatenate([np.asarray(k, dtype=np.int64) for k in self.keys])
            values = np.concatenate([np.asarray(v, dtype=np.float32) for v in self.values])
        return SparseBatch(keys.reshape(-1), offsets, values.reshape(-1),
                           feature_dim=self.feature_dim)

    def add(self, instance: Any, where: str) -> None:
        features: Any
        if isinstance(instance, list):
            self.add_dense(instance, where)
            return
        if not isinstance(instance, dict):
            raise DataError(f"{where}: expected an object such as {{\"features\": [...]}} or "
                            f"a list of numbers; got {type(instance).__name__}.")
        if "features" in instance:
            features = instance["features"]
            path = "features"
        elif "data" in instance:
            data = instance["data"]
            if not isinstance(data, dict) or "features" not in data:
                raise DataError(f'{where}: "data" must be an object with "features".')
            features = data["features"]
            path = "data.features"
        else:
            raise DataError(f'{where}: expected "features" or "data"; found keys '
                            f"{sorted(instance)}.")
        if isinstance(features, list):
            self.add_dense(features, f"{where}, {path}")
        elif isinstance(features, dict):
            if "keys" in features:
                self.add_sparse(features, f"{where}, {path}")
            elif "values" in features:
                values = features["values"]
                if not isinstance(values, list):
                    raise DataError(f"{where}, {path}.values: expected a list of numbers.")
                self.add_dense(values, f"{where}, {path}.values")
            else:
                raise DataError(f'{where}, {path}: expected "values" (dense) or "keys", '
                                '"shape" and "values" (sparse).')
        else:
            raise DataError(f"{where}, {path}: expected a list of numbers or an object; got "
                            f"{type(features).__name__}.")

    def add_dense(self, values: list[Any], where: str) -> None:
        if len(values) != self.feature_dim:
            raise DataError(f"{where}: dense features have length {len(values)} but the model "
                            f"was trained with feature_dim={self.feature_dim}.")
        arr = _numbers(values, where)
        keys = np.flatnonzero(arr)
        self.keys.append(keys.astype(np.int64, copy=False))
        self.values.append(arr[keys].astype(np.float32))
        self.lengths.append(int(keys.shape[0]))

    def add_sparse(self, features: Mapping[str, Any], where: str) -> None:
        if "shape" not in features:
            raise DataError(f'{where}: sparse features need "shape": [{self.feature_dim}] '
                            'next to "keys" and "values".')
        shape = features["shape"]
        if (not isinstance(shape, list) or len(shape) != 1 or isinstance(shape[0], bool)
                or not isinstance(shape[0], int)):
            raise DataError(f"{where}.shape must be [feature_dim], one integer; got {shape!r}.")
        if shape[0] != self.feature_dim:
            raise DataError(f"{where}.shape is [{shape[0]}] but the model was trained with "
                            f"feature_dim={self.feature_dim}.")
        keys_in, values_in = features["keys"], features.get("values")
        if not isinstance(keys_in, list) or not isinstance(values_in, list):
            raise DataError(f'{where}: "keys" and "values" must be lists.')
        if len(keys_in) != len(values_in):
            raise DataError(f"{where}: {len(keys_in)} keys but {len(values_in)} values.")
        feature_dim = self.feature_dim
        for pos, k in enumerate(keys_in):
            if type(k) is not int:
                if isinstance(k, bool) or not isinstance(k, (int, float)) or (
                        isinstance(k, float) and not k.is_integer()):
                    raise DataError(f"{where}.keys[{pos}]: expected an integer key; got {k!r}.")
            if k < 0 or k >= feature_dim:
                raise DataError(f"{where}.keys[{pos}] = {int(k)} is out of range: keys must be "
                                f">= 0 and < feature_dim={feature_dim}.")
        for pos, v in enumerate(values_in):
            if type(v) is not float and (type(v) is not int):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise DataError(f"{where}.values[{pos}]: expected a number; got {v!r}.")
            try:
                finite = math.isfinite(v)
            except OverflowError:  # an int too large for a float
                finite = False
            if not finite:
                raise DataError(f"{where}.values[{pos}]: {v!r} is not a finite number.")
        self.keys.append(keys_in)
        self.values.append(values_in)
        self.lengths.append(len(keys_in))


def _numbers(values: list[Any], where: str) -> npt.NDArray[np.float64]:
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):  # ragged nesting
        arr = np.asarray([None])
    if arr.ndim != 1 or arr.dtype.kind not in "iuf":
        for pos, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise DataError(f"{where}[{pos}]: expected a number; got {v!r}.")
        raise DataError(f"{where}: expected a flat list of numbers.")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        pos = int(np.argmax(~np.isfinite(arr)))
        raise DataError(f"{where}[{pos}]: {values[pos]!r} is not a finite number.")
    return arr


# ---------------------------------------------------------------------------------- responses
def encode_response(predictions: Mapping[str, npt.NDArray[np.float32]], kind: str) -> bytes:
    """Render ``{"score": (N,), ["predicted_label": (N,)]}`` in the response format ``kind``.

    JSON and JSON Lines are byte-exact with spec 6.3; recordio uses
    :func:`fmkit.io.protobuf.encode_label_records`.

    Raises
    ------
    DataError
        A score is not finite (inputs so large that float32 overflowed).
    """
    scores = np.asarray(predictions["score"], np.float32)
    if not np.all(np.isfinite(scores)):
        pos = int(np.argmax(~np.isfinite(scores)))
        raise DataError(f"row {pos}: the score is not finite ({scores[pos]}); feature values "
                        "are too large for this model.")
    if kind == RECORDIO:
        from fmkit.io.protobuf import encode_label_records

        columns = {name: np.asarray(arr, np.float32) for name, arr in predictions.items()}
        return encode_label_records(columns)
    items = _prediction_texts(scores, predictions.get("predicted_label"))
    if kind == JSONLINES:
        return "".join(f"{item}\n" for item in items).encode("ascii")
    return ('{"predictions": [' + ", ".join(items) + "]}").encode("ascii")


def _prediction_texts(scores: npt.NDArray[np.float32],
                      labels: npt.NDArray[np.float32] | None) -> list[str]:
    score_list = scores.tolist()
    if labels is None:
        return [f'{{"score": {s!r}}}' for s in score_list]
    return [f'{{"score": {s!r}, "predicted_label": {"1.0" if lab >= 0.5 else "0.0"}}}'
            for s, lab in zip(score_list, np.asarray(labels).tolist())]
