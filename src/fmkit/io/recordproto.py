"""The SageMaker ``aialgs.data.Record`` schema as protobuf message classes (spec §3.3).

fmkit's own reader and writer (:mod:`fmkit.io.protobuf`) do not use these classes; they
exist for interoperability (building or inspecting a Record object by hand) and as the
reference the tests and benchmarks compare against. The schema is declared here in code
and registered in a private descriptor pool when first used, so nothing is generated at
build time and an installed ``sagemaker`` package (which registers the same names in the
default pool) does not clash.

Example
-------
>>> Record = record_class()
>>> r = Record()
>>> r.features["values"].float32_tensor.values.extend([1.0, 1.0])
>>> len(r.SerializeToString())
24
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

_PACKAGE = "aialgs.data"


@lru_cache(maxsize=1)
def _classes() -> dict[str, Any]:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="fmkit_record.proto", package=_PACKAGE,
                                              syntax="proto2")

    def add_field(msg: Any, name: str, number: int, ftype: int, label: int,
                  type_name: str | None = None, packed: bool = False,
                  oneof: int | None = None) -> None:
        f = msg.field.add(name=name, number=number, type=ftype, label=label)
        if type_name:
            f.type_name = type_name
        if packed:
            f.options.packed = True
        if oneof is not None:
            f.oneof_index = oneof

    for name, vtype in (("Float32Tensor", F.TYPE_FLOAT), ("Float64Tensor", F.TYPE_DOUBLE),
                        ("Int32Tensor", F.TYPE_INT32)):
        msg = file.message_type.add(name=name)
        add_field(msg, "values", 1, vtype, F.LABEL_REPEATED, packed=True)
        add_field(msg, "keys", 2, F.TYPE_UINT64, F.LABEL_REPEATED, packed=True)
        add_field(msg, "shape", 3, F.TYPE_UINT64, F.LABEL_REPEATED, packed=True)
    msg = file.message_type.add(name="Bytes")
    add_field(msg, "value", 1, F.TYPE_BYTES, F.LABEL_REPEATED)
    add_field(msg, "content_type", 2, F.TYPE_STRING, F.LABEL_OPTIONAL)
    msg = file.message_type.add(name="Value")
    msg.oneof_decl.add(name="value")
    for name, number, tname in (("float32_tensor", 2, "Float32Tensor"),
                                ("float64_tensor", 3, "Float64Tensor"),
                                ("int32_tensor", 7, "Int32Tensor"), ("bytes", 9, "Bytes")):
        add_field(msg, name, number, F.TYPE_MESSAGE, F.LABEL_OPTIONAL,
                  f".{_PACKAGE}.{tname}", oneof=0)
    msg = file.message_type.add(name="Record")
    for entry_name in ("FeaturesEntry", "LabelEntry"):
        entry = msg.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        add_field(entry, "key", 1, F.TYPE_STRING, F.LABEL_OPTIONAL)
        add_field(entry, "value", 2, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, f".{_PACKAGE}.Value")
    add_field(msg, "features", 1, F.TYPE_MESSAGE, F.LABEL_REPEATED,
              f".{_PACKAGE}.Record.FeaturesEntry")
    add_field(msg, "label", 2, F.TYPE_MESSAGE, F.LABEL_REPEATED, f".{_PACKAGE}.Record.LabelEntry")
    for name, number in (("uid", 3), ("metadata", 4), ("configuration", 5)):
        add_field(msg, name, number, F.TYPE_STRING, F.LABEL_OPTIONAL)

    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in ("Record", "Value", "Float32Tensor", "Float64Tensor", "Int32Tensor", "Bytes")
    }


def record_class() -> Any:
    """Return the ``Record`` message class (needs the ``protobuf`` package)."""
    return _classes()["Record"]


# The SageMaker SDK's writers and reader (``sagemaker.amazon.common`` / ``serializer_utils``),
# reproduced with these classes. They are slow (one protobuf object per row) and serve as
# the reference fmkit's vectorised codec is tested and benchmarked against.


def _resolve_type(dtype: Any) -> str:
    import numpy as np

    if dtype == np.dtype(int):
        return "int32_tensor"
    if dtype == np.dtype(float):
        return "float64_tensor"
    if dtype == np.dtype("float32"):
        return "float32_tensor"
    raise ValueError(f"Unsupported dtype {dtype} on array")


def _write_recordio(stream: Any, data: bytes) -> None:
    import struct

    length = len(data)
    stream.write(struct.pack("<I", 0xCED7230A))
    stream.write(struct.pack("<I", length))
    stream.write(data)
    stream.write(b"\0" * ((((length + 3) >> 2) << 2) - length))


def write_spmatrix_reference(stream: Any, array: Any, labels: Any = None) -> None:
    """Write a scipy sparse matrix as ``write_spmatrix_to_sparse_tensor`` does."""
    import numpy as np

    tensor = _resolve_type(array.dtype)
    label_tensor = _resolve_type(labels.dtype) if labels is not None else ""
    csr = array.tocsr()
    n_rows, n_cols = csr.shape
    record = record_class()()
    for i in range(n_rows):
        record.Clear()
        row = csr.getrow(i)
        getattr(record.features["values"], tensor).values.extend(row.data)
        getattr(record.features["values"], tensor).keys.extend(row.indices.astype(np.uint64))
        if labels is not None:
            getattr(record.label["values"], label_tensor).values.extend([labels[i]])
        getattr(record.features["values"], tensor).shape.extend([n_cols])
        _write_recordio(stream, record.SerializeToString())


def write_dense_reference(stream: Any, array: Any, labels: Any = None) -> None:
    """Write a 2-D numpy array as ``write_numpy_to_dense_tensor`` does."""
    tensor = _resolve_type(array.dtype)
    label_tensor = _resolve_type(labels.dtype) if labels is not None else ""
    record = record_class()()
    for i, vector in enumerate(array):
        record.Clear()
        getattr(record.features["values"], tensor).values.extend(vector)
        if labels is not None:
            getattr(record.label["values"], label_tensor).values.extend([labels[i]])
        _write_recordio(stream, record.SerializeToString())


def read_records_reference(stream: Any) -> list[Any]:
    """Read every Record of a recordIO stream as ``read_records`` does (eagerly)."""
    import struct

    record_type = record_class()
    records = []
    while True:
        head = stream.read(8)
        if len(head) < 8:
            return records
        magic, length = struct.unpack("<II", head)
        if magic != 0xCED7230A:
            raise ValueError("bad magic")
        payload = stream.read(length)
        pad = (((length + 3) >> 2) << 2) - length
        if pad:
            stream.read(pad)
        record = record_type()
        record.ParseFromString(payload)
        records.append(record)
