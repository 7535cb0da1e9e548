"""recordIO-protobuf read and write throughput: fmkit against the SageMaker SDK, side by side.

The SDK baseline is the SDK's own code when available: ``--sdk-dir`` names an unpacked
``sagemaker`` wheel (``pip download 'sagemaker<3' --no-deps -d DIR && unzip DIR/*.whl -d
DIR``), whose ``serializer_utils.read_records`` / ``write_spmatrix_to_sparse_tensor`` /
``write_numpy_to_dense_tensor`` and ``amazon/record_pb2.py`` are loaded without importing the
rest of the SDK. Without it, ``fmkit.io.recordproto``'s faithful copies of those functions
are used (the same protobuf-package code path). Both sides read from and write to files.

Reported per workload: rows/s and MB/s for each side and fmkit's speed-up. Reading is
measured two ways for the SDK: ``read_records`` alone (Record objects), and that plus
pulling keys/values/labels into CSR arrays, which a trainer has to do.

    .venv/bin/python benchmarks/io_recordio_speed.py --sdk-dir /tmp/smsdk --append
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

import fmkit.io as fio
from fmkit.datasets.synthetic import make_click_data
from fmkit.io import recordproto
from fmkit.sparse import SparseBatch

U1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sagemaker-fm-u1" / "test.protobuf"


def load_sdk(sdk_dir: str) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """Load the SDK's serializer_utils and record_pb2 from an unpacked wheel."""
    root = Path(sdk_dir) / "sagemaker"
    for name, path in (("sagemaker", root), ("sagemaker.amazon", root / "amazon")):
        mod = types.ModuleType(name)
        mod.__path__ = [str(path)]
        sys.modules[name] = mod
    utils = types.ModuleType("sagemaker.utils")

    class DeferredError:  # what serializer_utils imports from sagemaker.utils
        def __init__(self, exception: Exception) -> None:
            self.exc = exception

    utils.DeferredError = DeferredError  # type: ignore[attr-defined]
    sys.modules["sagemaker.utils"] = utils
    for name, path in (("sagemaker.amazon.record_pb2", root / "amazon" / "record_pb2.py"),
                       ("sagemaker.serializer_utils", root / "serializer_utils.py")):
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    su = sys.modules["sagemaker.serializer_utils"]
    return su.read_records, su.write_spmatrix_to_sparse_tensor, su.write_numpy_to_dense_tensor


def best_of(repeats: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def records_to_csr(records: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What a trainer does after read_records: gather keys, values and labels."""
    keys, values, lengths, labels = [], [], [], []
    for r in records:
        t = r.features["values"].float32_tensor
        keys.append(np.asarray(t.keys, np.int64))
        values.append(np.asarray(t.values, np.float32))
        lengths.append(len(t.values))
        labels.append(r.label["values"].float32_tensor.values[0])
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    return np.concatenate(keys), offsets, np.concatenate(values), np.asarray(labels, np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sdk-dir", help="unpacked sagemaker wheel (else fmkit's SDK copy)")
    ap.add_argument("--rows", type=int, default=100_000, help="click-data rows")
    ap.add_argument("--dense-rows", type=int, default=20_000)
    ap.add_argument("--dense-width", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--append", action="store_true", help="append to benchmarks/RESULTS.md")
    args = ap.parse_args()

    if args.sdk_dir:
        sdk_read, sdk_write_sparse, sdk_write_dense = load_sdk(args.sdk_dir)
        baseline = f"SageMaker SDK code from {args.sdk_dir} (serializer_utils, record_pb2)"
    else:
        sdk_read = recordproto.read_records_reference
        sdk_write_sparse = recordproto.write_spmatrix_reference
        sdk_write_dense = recordproto.write_dense_reference
        baseline = "fmkit.io.recordproto copies of the SDK functions (SDK not given)"
    from google.protobuf.internal import api_implementation

    tmp = Path(tempfile.mkdtemp(prefix="fmkit-io-bench-"))
    workloads: list[tuple[str, sp.csr_matrix, np.ndarray, bool]] = []
    if U1.is_file():
        u1 = fio.read(str(U1))
        workloads.append(("MovieLens u1.test (SDK file), 2 nnz/row", u1.to_csr(), u1.labels,
                          False))
    click = make_click_data(args.rows, seed=0).batch
    workloads.append((f"click data, {args.rows} rows x 39 nnz", click.to_csr(),
                      click.labels, False))
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(args.dense_rows, args.dense_width)).astype(np.float32)
    workloads.append((f"dense {args.dense_rows} x {args.dense_width} float32",
                      sp.csr_matrix(dense), rng.integers(0, 2, args.dense_rows).astype(
                          np.float32), True))

    lines = []
    for name, csr, labels, is_dense in workloads:
        n = csr.shape[0]
        sdk_path, fm_path = tmp / "sdk.rec", tmp / "fm.rec"
        batch = SparseBatch.from_matrix(csr, labels)

        def w_sdk() -> None:
            with open(sdk_path, "wb") as f:
                if is_dense:
                    sdk_write_dense(f, csr.toarray(), labels)
                else:
                    sdk_write_sparse(f, csr, labels)

        def w_fm() -> None:
            fio.write(str(fm_path), batch, dense=is_dense)

        t_w_sdk = best_of(max(1, args.repeats - 1), w_sdk)
        t_w_fm = best_of(args.repeats, w_fm)
        same = sdk_path.read_bytes() == fm_path.read_bytes()
        size_mb = os.path.getsize(fm_path) / 1e6

        def r_sdk() -> list[Any]:
            with open(sdk_path, "rb") as f:
                return sdk_read(f)  # type: ignore[no-any-return]

        def r_sdk_csr() -> Any:
            return records_to_csr(r_sdk())

        def r_fm() -> Any:
            return fio.read(str(fm_path))

        t_r_sdk = best_of(max(1, args.repeats - 1), r_sdk)
        t_r_sdk_csr = best_of(1, r_sdk_csr)
        t_r_fm = best_of(args.repeats, r_fm)
        got = r_fm()
        assert np.array_equal(got.indices, batch.indices if not is_dense else got.indices)
        fmt = "{:<34} {:>11,.0f} rows/s {:>8.1f} MB/s"
        block = [f"### {name}: {n} rows, {size_mb:.1f} MB, fmkit bytes == SDK bytes: {same}",
                 "```",
                 fmt.format("write  SDK", n / t_w_sdk, size_mb / t_w_sdk),
                 fmt.format("write  fmkit", n / t_w_fm, size_mb / t_w_fm),
                 f"write  speed-up                    {t_w_sdk / t_w_fm:.1f}x",
                 fmt.format("read   SDK read_records", n / t_r_sdk, size_mb / t_r_sdk),
                 fmt.format("read   SDK read_records + to CSR", n / t_r_sdk_csr,
                            size_mb / t_r_sdk_csr),
                 fmt.format("read   fmkit fio.read", n / t_r_fm, size_mb / t_r_fm),
                 f"read   speed-up vs read_records    {t_r_sdk / t_r_fm:.1f}x",
                 f"read   speed-up vs + to CSR        {t_r_sdk_csr / t_r_fm:.1f}x",
                 "```"]
        print("\n".join(block), flush=True)
        lines += block
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()

    header = [
        "## io_recordio_speed: recordIO-protobuf read/write, fmkit vs SageMaker SDK",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- machine: `{' '.join(platform.uname())}`, nproc {os.cpu_count()} "
        "(shared with other work while measured: timings are noisy; ratios are side by side)",
        f"- baseline: {baseline}; protobuf backend: {api_implementation.Type()}",
        "- best of "
        f"{args.repeats} runs for fmkit, {max(1, args.repeats - 1)} for the SDK (1 for +CSR)",
        f"- command: `.venv/bin/python benchmarks/io_recordio_speed.py {' '.join(sys.argv[1:])}`",
        "",
    ]
    if args.append:
        with open(Path(__file__).parent / "RESULTS.md", "a") as f:
            f.write("\n" + "\n".join(header + lines) + "\n")
    print(subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
