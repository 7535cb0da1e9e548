"""SageMaker FM model artifacts: read and write ``model.tar.gz`` / ``model_algo-1``, numpy only.

``model.tar.gz`` holds one member, ``model_algo-1`` (mode 0644): a ZIP archive, STORED,
whose members are, in this order (spec section 5):

- ``meta.json``: ``{"version": 1, "epoch_number": 1, "training_parameters": {...},
  "label_names": ["out_label"]}``, every training parameter a string;
- ``symbol.json``: the MXNet 1.x symbol graph of the FM. Its head is
  ``LinearRegressionOutput`` (regressor) or ``LogisticRegressionOutput`` (binary);
- ``params``: an MXNet NDArray list holding ``arg:w1_weight`` (F, 1) and ``arg:v`` (F, K)
  in row-sparse storage and ``arg:w0_weight`` (1,) dense, all float32, little-endian.

Reading needs no MXNet: the NDArray list is parsed with :mod:`struct`. The reader also
takes dense storage, partial row-sparse storage (missing rows are zero), float64/float16
data and the V1 (pre-storage-type) NDArray header. The writer reproduces SageMaker's bytes:
loading SageMaker's own artifact and writing it back gives the same ``model_algo-1``.

fmkit extras (``vocabulary.json``, ``seen.npz``) may sit next to ``model_algo-1`` in the
tarball; SageMaker-style loaders ignore them and :func:`load` reads them back.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fmkit.artifact import Artifact, read_seen, write_seen
from fmkit.errors import ArtifactError
from fmkit.io import paths

MODEL_MEMBER = "model_algo-1"
TARBALL = "model.tar.gz"
EXTRA_MEMBERS = ("vocabulary.json", "seen.npz")

_LIST_MAGIC = 0x112
_V1_MAGIC = 0xF993FAC8
_V2_MAGIC = 0xF993FAC9
_V3_MAGIC = 0xF993FACA
_DTYPES: dict[int, np.dtype[Any]] = {
    0: np.dtype("<f4"), 1: np.dtype("<f8"), 2: np.dtype("<f2"), 3: np.dtype("u1"),
    4: np.dtype("<i4"), 5: np.dtype("i1"), 6: np.dtype("<i8"),
}
_MAX_ELEMENTS = 1 << 31  # 8 GB of float32: beyond any FM SageMaker can train
_HEADS = {"LinearRegressionOutput": "regressor", "LogisticRegressionOutput": "binary_classifier"}

# Defaults and order of SageMaker's meta.json "training_parameters" (as SageMaker writes them);
# feature_dim, num_factors and predictor_type follow at the end.
_SAGEMAKER_PARAMETERS: tuple[tuple[str, str], ...] = (
    ("epochs", "1"), ("mini_batch_size", "1000"), ("use_bias", "true"), ("use_linear", "true"),
    ("bias_lr", "0.1"), ("linear_lr", "0.001"), ("factors_lr", "0.0001"),
    ("bias_wd", "0.01"), ("linear_wd", "0.001"), ("factors_wd", "0.00001"),
    ("bias_init_method", "normal"), ("bias_init_sigma", "0.01"),
    ("linear_init_method", "normal"), ("linear_init_sigma", "0.01"),
    ("factors_init_method", "normal"), ("factors_init_sigma", "0.001"),
    ("batch_metrics_publish_interval", "500"), ("_data_format", "record"),
    ("_kvstore", "auto"), ("_learning_rate", "1.0"), ("_log_level", "info"),
    ("_num_gpus", "auto"), ("_num_kv_servers", "auto"), ("_optimizer", "adam"),
    ("_tuning_objective_metric", ""), ("_use_full_symbolic", "true"), ("_wd", "1.0"),
)


# ---------------------------------------------------------------------------------- finding
def find_model_file(path: str | os.PathLike[str]) -> Path | None:
    """Return the ``model.tar.gz`` or ``model_algo-1`` that ``path`` is or holds, else None.

    A folder is searched at its top level first, then below (sorted), so that the server
    loads "any model_algo-1 found under the model directory".
    """
    p = Path(path)
    if p.is_file():
        return p if _looks_like_model_file(p) else None
    if not p.is_dir():
        return None
    for name in (MODEL_MEMBER, TARBALL):
        if (p / name).is_file():
            return p / name
    for candidate in sorted(p.rglob("*")):
        if candidate.name in (MODEL_MEMBER, TARBALL) and candidate.is_file():
            return candidate
    return None


def _looks_like_model_file(p: Path) -> bool:
    try:
        with p.open("rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    if head[:2] == b"\x1f\x8b":  # gzip: a tarball that should hold model_algo-1
        return True
    return head == b"PK\x03\x04" or p.name == MODEL_MEMBER


def is_sagemaker_model(path: str | os.PathLike[str]) -> bool:
    """Return True if ``path`` is, or is a folder holding, a SageMaker FM artifact."""
    return find_model_file(path) is not None


# ---------------------------------------------------------------------------------- reading
def load(path: str | os.PathLike[str]) -> Artifact:
    """Read a SageMaker FM artifact into an :class:`~fmkit.artifact.Artifact` (one sample).

    Parameters
    ----------
    path : path-like
        ``model.tar.gz``, ``model_algo-1``, or a folder holding either (searched below too).

    Returns
    -------
    Artifact
        ``w0`` (1,), ``w`` (1, F), ``V`` (1, F, K) float32; ``predictor_type`` from
        meta.json, else from the symbol head; link ``logit`` for binary classifiers.
        ``metadata["hyperparameters"]`` holds meta.json's training parameters (strings).

    Raises
    ------
    ArtifactError
        Missing members, a corrupt archive, or arrays with wrong names or shapes; the
        message names the file and, for params, the byte offset.
    """
    found = find_model_file(path)
    if found is None:
        raise ArtifactError(f"{path}: no model.tar.gz or {MODEL_MEMBER} found.")
    extras: dict[str, bytes] = {}
    if _is_gzip(found):
        zip_bytes, extras = _read_tarball(found)
        source = f"{found}!{MODEL_MEMBER}"
    else:
        try:
            zip_bytes = found.read_bytes()
        except OSError as exc:
            raise ArtifactError(f"{found}: cannot read: {exc.strerror or exc}.") from None
        source = str(found)
        for name in EXTRA_MEMBERS:  # fmkit extras unpacked next to model_algo-1
            if (found.parent / name).is_file():
                extras[name] = (found.parent / name).read_bytes()
    return load_bytes(zip_bytes, source=source, extras=extras)


def _is_gzip(p: Path) -> bool:
    with p.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _read_tarball(p: Path) -> tuple[bytes, dict[str, bytes]]:
    extras: dict[str, bytes] = {}
    model: bytes | None = None
    try:
        with tarfile.open(p, "r:gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = Path(member.name).name
                if name == MODEL_MEMBER or name in EXTRA_MEMBERS:
                    fh = tar.extractfile(member)
                    if fh is None:
                        continue
                    data = fh.read()
                    if name == MODEL_MEMBER:
                        model = data
                    else:
                        extras[name] = data
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError(f"{p}: not a readable tar.gz: {exc}.") from None
    if model is None:
        raise ArtifactError(f"{p}: the tarball holds no {MODEL_MEMBER}.")
    return model, extras


def load_bytes(data: bytes, *, source: str = MODEL_MEMBER,
               extras: Mapping[str, bytes] | None = None) -> Artifact:
    """Read the bytes of a ``model_algo-1`` ZIP; see :func:`load`."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = {info.filename: info for info in archive.infolist()}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError,
            RuntimeError) as exc:
        raise ArtifactError(f"{source}: not a ZIP archive ({exc}).") from None
    if "params" not in members:
        raise ArtifactError(f"{source}: no 'params' member; found {sorted(members)}.")

    def read(name: str) -> bytes:
        try:
            return archive.read(name)
        except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError,
                NotImplementedError, RuntimeError) as exc:  # bad CRC, compression, encryption
            raise ArtifactError(f"{source}: cannot read member {name!r}: {exc}.") from None

    meta: dict[str, Any] = {}
    if "meta.json" in members:
        meta = _parse_json(read("meta.json"), f"{source}/meta.json")
    symbol: dict[str, Any] | None = None
    if "symbol.json" in members:
        symbol = _parse_json(read("symbol.json"), f"{source}/symbol.json")
    arrays = read_ndarray_list(read("params"), source=f"{source}/params")
    params = {name.split(":", 1)[-1]: arr for name, arr in arrays.items()}

    training = meta.get("training_parameters") or {}
    if not isinstance(training, dict):
        raise ArtifactError(f"{source}/meta.json: training_parameters must be an object.")
    predictor_type = training.get("predictor_type")
    if predictor_type is None and symbol is not None:
        predictor_type = _head_predictor_type(symbol)
    if predictor_type not in ("binary_classifier", "regressor"):
        raise ArtifactError(
            f"{source}: cannot tell the predictor_type: meta.json says "
            f"{training.get('predictor_type')!r} and the symbol head is not "
            "LinearRegressionOutput or LogisticRegressionOutput."
        )
    if "v" not in params:
        raise ArtifactError(f"{source}/params: no array 'arg:v' (the factors); found "
                            f"{sorted(arrays)}.")
    V = params["v"]
    if V.ndim != 2:
        raise ArtifactError(f"{source}/params: 'arg:v' must be 2-D (F, K); got {V.shape}.")
    F, K = V.shape
    w = params.get("w1_weight")
    if w is None:  # use_linear=false
        w = np.zeros((F, 1), np.float32)
    if w.size != F:
        raise ArtifactError(f"{source}/params: 'arg:w1_weight' has shape {w.shape}; expected "
                            f"({F}, 1) to match 'arg:v' {V.shape}.")
    w0 = params.get("w0_weight", np.zeros(1, np.float32))
    if w0.size != 1:
        raise ArtifactError(f"{source}/params: 'arg:w0_weight' has shape {w0.shape}; "
                            "expected (1,).")
    metadata: dict[str, Any] = {
        "source": "sagemaker",
        "solver": "sgd",
        "hyperparameters": dict(training),
        "sagemaker_meta": {k: v for k, v in meta.items() if k != "training_parameters"},
    }
    vocabulary = None
    seen = None
    extras = extras or {}
    if "vocabulary.json" in extras:
        vocabulary = _parse_json(extras["vocabulary.json"], f"{source}/../vocabulary.json")
    if "seen.npz" in extras:
        seen = read_seen(io.BytesIO(extras["seen.npz"]), f"{source}/../seen.npz")
    artifact = Artifact.from_point(
        float(w0.reshape(-1)[0]), w.reshape(-1), V, str(predictor_type),
        metadata=metadata, vocabulary=vocabulary, seen=seen,
    )
    artifact.check()
    return artifact


def _parse_json(data: bytes, source: str) -> dict[str, Any]:
    try:
        out = json.loads(data)
    except ValueError as exc:
        raise ArtifactError(f"{source}: invalid JSON: {exc}.") from None
    if not isinstance(out, dict):
        raise ArtifactError(f"{source}: expected a JSON object.")
    return out


def _head_predictor_type(symbol: Mapping[str, Any]) -> str | None:
    nodes = symbol.get("nodes") or []
    for head in symbol.get("heads") or []:
        try:
            op = nodes[head[0]]["op"]
        except (IndexError, KeyError, TypeError):
            continue
        if op in _HEADS:
            return _HEADS[op]
    for node in nodes:  # fall back to any output op in the graph
        if isinstance(node, dict) and node.get("op") in _HEADS:
            return _HEADS[node["op"]]
    return None


class _Cursor:
    """Little-endian reader over bytes that reports the byte offset of what went wrong."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.pos = 0
        self.source = source

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ArtifactError(
                f"{self.source}: truncated at byte {self.pos}: {what} needs {n} bytes, "
                f"{len(self.data) - self.pos} left."
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))

    def shape(self, what: str, *, legacy: bool = False) -> tuple[int, ...]:
        (ndim,) = self.unpack("<I", f"{what} ndim")
        if ndim > 32:
            raise ArtifactError(f"{self.source}: byte {self.pos - 4}: {what} has {ndim} "
                                "dimensions; the file is corrupt.")
        fmt = f"<{ndim}{'I' if legacy else 'q'}"
        dims = self.unpack(fmt, what)
        if any(d < 0 for d in dims):
            raise ArtifactError(f"{self.source}: byte {self.pos}: negative {what} {dims}.")
        return tuple(int(d) for d in dims)

    def array(self, dtype_code: int, shape: tuple[int, ...], what: str) -> npt.NDArray[Any]:
        dtype = _DTYPES.get(dtype_code)
        if dtype is None:
            raise ArtifactError(f"{self.source}: byte {self.pos}: {what} has unknown MXNet "
                                f"dtype code {dtype_code}.")
        n = int(np.prod(shape)) if shape else 1
        raw = self.take(n * dtype.itemsize, f"{what} data {shape}")
        out: npt.NDArray[Any] = np.frombuffer(raw, dtype=dtype).reshape(shape)
        return out


def read_ndarray_list(data: bytes, *, source: str = "params") -> dict[str, npt.NDArray[Any]]:
    """Parse an MXNet NDArray list (``mx.nd.save`` format) into dense numpy arrays by name.

    Row-sparse arrays are densified (rows absent from the storage are zero). Float arrays
    come back as float32.

    Raises
    ------
    ArtifactError
        Bad magic numbers, truncation or an unknown dtype, naming ``source`` and the byte
        offset.
    """
    cur = _Cursor(data, source)
    magic, _reserved = cur.unpack("<QQ", "list header")
    if magic != _LIST_MAGIC:
        raise ArtifactError(f"{source}: byte 0: expected NDArray list magic 0x112, found "
                            f"{magic:#x}; this is not an MXNet params file.")
    (count,) = cur.unpack("<Q", "array count")
    if count > 1_000_000:
        raise ArtifactError(f"{source}: byte 16: implausible array count {count}.")
    arrays = [_read_ndarray(cur, i) for i in range(count)]
    (n_names,) = cur.unpack("<Q", "name count")
    if n_names not in (0, count):
        raise ArtifactError(f"{source}: byte {cur.pos - 8}: {n_names} names for {count} arrays.")
    names: list[str] = []
    for i in range(n_names):
        (length,) = cur.unpack("<Q", f"name {i} length")
        raw = cur.take(int(length), f"name {i}")
        try:
            names.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ArtifactError(f"{source}: byte {cur.pos - length}: name {i} is not UTF-8.") \
                from None
    if not names:
        names = [str(i) for i in range(count)]
    return dict(zip(names, arrays))


def _read_ndarray(cur: _Cursor, i: int) -> npt.NDArray[Any]:
    start = cur.pos
    (magic,) = cur.unpack("<I", f"array {i} magic")
    what = f"array {i}"
    if magic in (_V2_MAGIC, _V3_MAGIC):
        (stype,) = cur.unpack("<i", f"{what} storage type")
        storage_shape: tuple[int, ...] | None = None
        if stype not in (0, 1):
            raise ArtifactError(f"{cur.source}: byte {start}: {what} has storage type {stype}; "
                                "only dense (0) and row_sparse (1) are FM parameters.")
        if stype == 1:
            storage_shape = cur.shape(f"{what} storage shape")
        shape = cur.shape(f"{what} shape")
    elif magic == _V1_MAGIC:
        stype, storage_shape = 0, None
        shape = cur.shape(f"{what} shape")
    else:
        raise ArtifactError(f"{cur.source}: byte {start}: {what}: expected NDArray magic "
                            f"0xf993fac9, found {magic:#x}.")
    if not shape:
        return np.zeros((), np.float32)
    if int(np.prod(shape, dtype=np.float64)) > _MAX_ELEMENTS:
        raise ArtifactError(f"{cur.source}: byte {start}: {what} claims shape {shape}, over "
                            f"{_MAX_ELEMENTS} elements; the file is corrupt.")
    _dev_type, _dev_id, dtype_code = cur.unpack("<iii", f"{what} context and dtype")
    if stype == 0:
        arr = cur.array(dtype_code, shape, what)
        return _as_float32(arr)
    (aux_dtype,) = cur.unpack("<i", f"{what} aux dtype")
    aux_shape = cur.shape(f"{what} aux shape")
    if not storage_shape or len(aux_shape) != 1:
        raise ArtifactError(f"{cur.source}: byte {start}: {what}: row-sparse storage shape "
                            f"{storage_shape} and row-index shape {aux_shape} are not "
                            "(rows, ...) and (rows,).")
    values = cur.array(dtype_code, storage_shape, f"{what} values")
    rows = cur.array(aux_dtype, aux_shape, f"{what} row indices").astype(np.int64)
    if rows.shape[0] != storage_shape[0] or storage_shape[1:] != shape[1:]:
        raise ArtifactError(f"{cur.source}: byte {start}: {what}: row-sparse storage "
                            f"{storage_shape} with {rows.shape[0]} rows does not fit {shape}.")
    if rows.size and (rows.min() < 0 or rows.max() >= shape[0]):
        raise ArtifactError(f"{cur.source}: byte {start}: {what}: row index out of range "
                            f"for {shape[0]} rows.")
    dense = np.zeros(shape, np.float32)
    dense[rows] = values
    return dense


def _as_float32(arr: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    return np.ascontiguousarray(arr, dtype=np.float32)


# ---------------------------------------------------------------------------------- writing
def training_parameters(artifact: Artifact) -> dict[str, str]:
    """Return meta.json's ``training_parameters`` for ``artifact``: strings, SageMaker's order.

    A model loaded from SageMaker keeps its own; an fmkit model gets SageMaker's defaults
    overlaid with its SageMaker-native hyperparameters.
    """
    hp = dict(artifact.metadata.get("hyperparameters") or {})
    if artifact.metadata.get("source") == "sagemaker" and hp:
        return {str(k): str(v) for k, v in hp.items()}
    out = dict(_SAGEMAKER_PARAMETERS)
    for key in list(out):
        if key.startswith("_"):
            continue
        if hp.get(key) is not None:
            value = hp[key]
            if key.endswith("_init_method") and value not in ("normal", "uniform", "constant"):
                continue  # an fmkit-only initialisation; it no longer matters once trained
            out[key] = str(value).lower() if isinstance(value, bool) else str(value)
    out["feature_dim"] = str(artifact.feature_dim)
    out["num_factors"] = str(artifact.num_factors)
    out["predictor_type"] = artifact.predictor_type
    return out


def _float_text(value: str, default: float) -> str:
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return repr(default)


def _init_text(params: Mapping[str, str], group: str, default_sigma: float) -> str:
    method = params.get(f"{group}_init_method", "normal")
    if method == "uniform":
        arg = {"scale": float(_float_text(params.get(f"{group}_init_scale", "0.01"), 0.01))}
    elif method == "constant":
        arg = {"value": float(_float_text(params.get(f"{group}_init_value", "0.0"), 0.0))}
    else:
        method = "normal"
        arg = {"sigma": float(_float_text(params.get(f"{group}_init_sigma", str(default_sigma)),
                                          default_sigma))}
    return json.dumps([method, arg])


def symbol_json(feature_dim: int, num_factors: int, predictor_type: str,
                params: Mapping[str, str] | None = None) -> bytes:
    """Return SageMaker's ``symbol.json`` for an FM, formatted as MXNet 1.3 writes it."""
    params = params or {}
    head = ("LogisticRegressionOutput" if predictor_type == "binary_classifier"
            else "LinearRegressionOutput")

    defaults = dict(_SAGEMAKER_PARAMETERS)

    def weight(name: str, group: str, shape: str, sparse: bool) -> dict[str, Any]:
        attrs = {
            "__init__": _init_text(params, group, float(defaults[f"{group}_init_sigma"])),
            "__lr_mult__": _float_text(params.get(f"{group}_lr", ""),
                                       float(defaults[f"{group}_lr"])),
            "__shape__": shape,
        }
        if sparse:
            attrs["__storage_type__"] = "1"
        attrs["__wd_mult__"] = _float_text(params.get(f"{group}_wd", ""),
                                           float(defaults[f"{group}_wd"]))
        return {"op": "null", "name": name, "attrs": attrs, "inputs": []}

    F, K = feature_dim, num_factors
    nodes: list[dict[str, Any]] = [
        {"op": "null", "name": "data", "attrs": {"__storage_type__": "2"}, "inputs": []},
        weight("w1_weight", "linear", f"({F}, 1)", True),
        {"op": "dot", "name": "dot0", "inputs": [[0, 0, 0], [1, 0, 0]]},
        weight("w0_weight", "bias", "(1,)", False),
        {"op": "broadcast_add", "name": "broadcast_plus0", "inputs": [[2, 0, 0], [3, 0, 0]]},
        weight("v", "factors", f"({F}, {K})", True),
        {"op": "dot", "name": "dot2", "inputs": [[0, 0, 0], [5, 0, 0]]},
        {"op": "square", "name": "Square", "inputs": [[6, 0, 0]]},
        {"op": "_mul_scalar", "name": "_mulscalar0", "attrs": {"scalar": "0.5"},
         "inputs": [[7, 0, 0]]},
        {"op": "Concat", "name": "concat0", "attrs": {"dim": "1", "num_args": "2"},
         "inputs": [[4, 0, 0], [8, 0, 0]]},
        {"op": "sum", "name": "sum0", "attrs": {"axis": "1", "keepdims": "True"},
         "inputs": [[9, 0, 0]]},
        {"op": "square", "name": "x_square", "inputs": [[0, 0, 0]]},
        {"op": "_square_sum", "name": "_square_sum0", "attrs": {"axis": "1", "keepdims": "True"},
         "inputs": [[5, 0, 0]]},
        {"op": "dot", "name": "dot1", "inputs": [[11, 0, 0], [12, 0, 0]]},
        {"op": "negative", "name": "negative0", "inputs": [[13, 0, 0]]},
        {"op": "_mul_scalar", "name": "_mulscalar1", "attrs": {"scalar": "0.5"},
         "inputs": [[14, 0, 0]]},
        {"op": "elemwise_add", "name": "Final_Summation", "inputs": [[10, 0, 0], [15, 0, 0]]},
        {"op": "null", "name": "out_label", "inputs": []},
        {"op": head, "name": "out", "inputs": [[16, 0, 0], [17, 0, 0]]},
    ]
    lines = ["{", '  "nodes": [']
    node_texts = []
    for node in nodes:
        parts = [f'      "op": {json.dumps(node["op"])}',
                 f'      "name": {json.dumps(node["name"])}']
        attrs = node.get("attrs")
        if attrs is not None:
            if len(attrs) == 1:
                parts.append(f'      "attrs": {json.dumps(attrs)}')
            else:
                inner = ", \n".join(f"        {json.dumps(k)}: {json.dumps(v)}"
                                    for k, v in attrs.items())
                parts.append('      "attrs": {\n' + inner + "\n      }")
        parts.append(f'      "inputs": {json.dumps(node["inputs"])}')
        node_texts.append("    {\n" + ", \n".join(parts) + "\n    }")
    lines.append(", \n".join(node_texts))
    row_ptr = ", \n".join(f"    {i}" for i in range(len(nodes) + 1))
    text = (
        "\n".join(lines) + "\n  ], \n"
        '  "arg_nodes": [0, 1, 3, 5, 17], \n'
        '  "node_row_ptr": [\n' + row_ptr + "\n  ], \n"
        '  "heads": [[18, 0, 0]], \n'
        '  "attrs": {"mxnet_version": ["int", 10301]}\n}'
    )
    return text.encode("utf-8")


def write_ndarray_list(arrays: Mapping[str, npt.NDArray[Any]],
                       row_sparse: tuple[str, ...] = ()) -> bytes:
    """Return an MXNet NDArray list (V2 headers) of float32 ``arrays`` in the given order.

    Names in ``row_sparse`` are written in row-sparse storage with every row present, as
    SageMaker does for ``arg:w1_weight`` and ``arg:v``.
    """
    out = [struct.pack("<QQQ", _LIST_MAGIC, 0, len(arrays))]
    for name, arr in arrays.items():
        a = np.ascontiguousarray(arr, dtype="<f4")
        shape = struct.pack(f"<I{a.ndim}q", a.ndim, *a.shape)
        if name in row_sparse:
            out.append(struct.pack("<Ii", _V2_MAGIC, 1))
            out.append(shape)  # storage shape: all rows stored
            out.append(shape)
            out.append(struct.pack("<iiii", 1, 0, 0, 6))
            out.append(struct.pack("<Iq", 1, a.shape[0]))
            out.append(a.tobytes())
            out.append(np.arange(a.shape[0], dtype="<i8").tobytes())
        else:
            out.append(struct.pack("<Ii", _V2_MAGIC, 0))
            out.append(shape)
            out.append(struct.pack("<iii", 1, 0, 0))
            out.append(a.tobytes())
    out.append(struct.pack("<Q", len(arrays)))
    for name in arrays:
        raw = name.encode("utf-8")
        out.append(struct.pack("<Q", len(raw)) + raw)
    return b"".join(out)


def model_bytes(artifact: Artifact, *,
                date_time: tuple[int, int, int, int, int, int] | None = None) -> bytes:
    """Return the bytes of ``model_algo-1`` for ``artifact`` (a one-sample, logit/identity model).

    Raises
    ------
    ArtifactError
        The model has ``user_item`` interactions, several parameter samples (MCMC) or a
        probit link, which SageMaker's graph cannot express.
    """
    artifact.check()
    if artifact.interactions != "all":
        raise ArtifactError(
            f"SageMaker's format cannot hold this model: it was trained with "
            f"interactions={artifact.interactions!r} (pairwise terms only between user and "
            "item keys) but SageMaker's FM adds the pairs between every two keys, so its "
            "scores would differ; export it with --format npz, or train with "
            "--interactions all for a model SageMaker can load."
        )
    if artifact.num_samples != 1:
        raise ArtifactError(
            f"SageMaker's format holds one parameter set but this model has "
            f"{artifact.num_samples} MCMC samples; export it with --format npz, or train "
            "with solver='sgd' or 'als'."
        )
    expected = "logit" if artifact.predictor_type == "binary_classifier" else "identity"
    if artifact.link != expected:
        raise ArtifactError(
            f"SageMaker's {artifact.predictor_type} graph uses the {expected} link but this "
            f"model uses {artifact.link!r}; export it with --format npz."
        )
    params = training_parameters(artifact)
    meta = {"version": 1, "epoch_number": 1, "training_parameters": params,
            "label_names": ["out_label"]}
    meta.update({k: v for k, v in (artifact.metadata.get("sagemaker_meta") or {}).items()
                 if k not in meta})
    F, K = artifact.feature_dim, artifact.num_factors
    params_bytes = write_ndarray_list(
        {
            "arg:w1_weight": artifact.w[0].reshape(F, 1),
            "arg:w0_weight": artifact.w0[:1],
            "arg:v": artifact.V[0],
        },
        row_sparse=("arg:w1_weight", "arg:v"),
    )
    members = [
        ("meta.json", json.dumps(meta).encode("utf-8")),
        ("symbol.json", symbol_json(F, K, artifact.predictor_type, params)),
        ("params", params_bytes),
    ]
    when = date_time or time.localtime()[:6]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=when)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, data)
    return buf.getvalue()


def write(artifact: Artifact, path: str | os.PathLike[str], *, extras: bool = True,
          date_time: tuple[int, int, int, int, int, int] | None = None) -> Path:
    """Write ``artifact`` in SageMaker's layout, atomically; return the path written.

    Parameters
    ----------
    artifact : Artifact
        A one-sample model (SGD or ALS) with the identity (regressor) or logit link.
    path : path-like
        A name ending in ``.tar.gz`` gets SageMaker's ``model.tar.gz`` (``model_algo-1``,
        mode 0644, then the extras); any other name gets the bare ``model_algo-1`` ZIP.
    extras : bool, default=True
        Add ``vocabulary.json`` and ``seen.npz`` next to ``model_algo-1`` in the tarball
        when the model has them (SageMaker's loaders ignore extra members).
    date_time : tuple, optional
        The ZIP members' timestamp (local time now by default).
    """
    target = Path(path)
    zip_data = model_bytes(artifact, date_time=date_time)
    with paths.atomic_write(str(target)) as fh:
        if not target.name.endswith((".tar.gz", ".tgz")):
            fh.write(zip_data)
        else:
            with tarfile.open(fileobj=fh, mode="w:gz") as tar:
                _add_member(tar, MODEL_MEMBER, zip_data)
                if extras and artifact.vocabulary is not None:
                    _add_member(tar, "vocabulary.json",
                                json.dumps(artifact.vocabulary).encode("utf-8"))
                if extras and artifact.seen is not None:
                    buf = io.BytesIO()
                    write_seen(buf, artifact.seen)
                    _add_member(tar, "seen.npz", buf.getvalue())
    return target


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))
