"""``fmkit convert`` and ``fmkit inspect``: move data between formats, and look inside it."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import typer

from fmkit.errors import DataError, FMError


class _Summary:
    """Running statistics of a channel's rows for ``fmkit inspect`` (constant memory)."""

    #: label values are counted one by one up to this many distinct values
    MAX_DISTINCT_LABELS = 20

    def __init__(self, head: int) -> None:
        self.head = head
        self.rows = self.nnz = self.unlabelled = 0
        self.row_min: int | None = None
        self.row_max = 0
        self.key_min: int | None = None
        self.key_max = -1
        self.dims: set[int] = set()
        self.label_counts: dict[float, int] = {}
        self.too_many_labels = False
        self.label_stats = [0.0, 0.0, 0.0, float("inf"), float("-inf")]  # n, sum, sum sq, lo, hi
        self.shown: list[dict[str, Any]] = []

    def add(self, batch: Any, file: str, file_row: int) -> None:
        """Fold one batch in; raise DataError on a non-finite value or label."""
        import numpy as np

        if batch.feature_dim is not None:
            self.dims.add(batch.feature_dim)
        bad = ~np.isfinite(batch.values)
        if bad.any():
            r = int(np.searchsorted(batch.offsets, int(np.argmax(bad)), "right")) - 1
            raise DataError(f"{file}, row {file_row + r}: feature value "
                            f"{batch.values[bad][0]} is not finite.")
        for i in range(min(self.head - len(self.shown), batch.n_rows)):
            a, b = int(batch.offsets[i]), int(batch.offsets[i + 1])
            self.shown.append({
                "file": file, "row": file_row + i,
                "label": None if batch.labels is None else float(batch.labels[i]),
                "keys": batch.indices[a:b].tolist(),
                "values": [float(v) for v in batch.values[a:b]],
            })
        if batch.n_rows:
            lengths = np.diff(batch.offsets)
            low = int(lengths.min())
            self.row_min = low if self.row_min is None else min(self.row_min, low)
            self.row_max = max(self.row_max, int(lengths.max()))
        if batch.nnz:
            lo, hi = int(batch.indices.min()), int(batch.indices.max())
            self.key_min = lo if self.key_min is None else min(self.key_min, lo)
            self.key_max = max(self.key_max, hi)
        if batch.labels is None:
            self.unlabelled += batch.n_rows
        elif batch.n_rows:
            self._add_labels(batch.labels.astype(np.float64), file, file_row)
        self.rows += batch.n_rows
        self.nnz += batch.nnz

    def _add_labels(self, y: Any, file: str, file_row: int) -> None:
        import numpy as np

        if not np.all(np.isfinite(y)):
            r = int(np.argmax(~np.isfinite(y)))
            raise DataError(f"{file}, row {file_row + r}: label {y[r]} is not finite.")
        st = self.label_stats
        st[0] += y.size
        st[1] += float(y.sum())
        st[2] += float((y * y).sum())
        st[3] = min(st[3], float(y.min()))
        st[4] = max(st[4], float(y.max()))
        if not self.too_many_labels:
            values, counts = np.unique(y, return_counts=True)
            for k, v in zip(values.tolist(), counts.tolist()):
                self.label_counts[k] = self.label_counts.get(k, 0) + v
            self.too_many_labels = len(self.label_counts) > self.MAX_DISTINCT_LABELS

    def check(self, source: str) -> None:
        """Raise DataError when files disagree on feature_dim or a key exceeds it."""
        if len(self.dims) > 1:
            raise DataError(f"{source}: files state different feature_dim values "
                            f"{sorted(self.dims)}.")
        if self.dims and self.key_max >= min(self.dims):
            raise DataError(f"{source}: key {self.key_max} is beyond feature_dim "
                            f"{min(self.dims)}.")

    def labels(self) -> dict[str, Any]:
        n, total, total_sq, low, high = self.label_stats
        if not n:
            return {}
        mean = total / n
        out: dict[str, Any] = {"count": int(n), "min": low, "max": high, "mean": mean,
                               "std": max(total_sq / n - mean * mean, 0.0) ** 0.5}
        if not self.too_many_labels:
            out["values"] = {f"{k:g}": v for k, v in sorted(self.label_counts.items())}
        return out

    def report(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "nnz": self.nnz,
            "feature_dim": min(self.dims) if self.dims else None,
            "keys": None if self.key_min is None else {"min": self.key_min,
                                                       "max": self.key_max},
            "nnz_per_row": None if not self.rows else {
                "min": self.row_min, "mean": self.nnz / self.rows, "max": self.row_max},
            "labels": self.labels(),
            "unlabelled_rows": self.unlabelled,
            "head": self.shown,
        }


def register(app: typer.Typer) -> None:
    """Add ``convert`` and ``inspect`` to the fmkit command line."""

    @app.command("convert")
    def convert(
        source: str = typer.Argument(..., metavar="IN",
                                     help="File, folder, glob or s3://bucket/prefix."),
        dest: str = typer.Argument(..., metavar="OUT", help="Output file (local or s3://)."),
        to: str | None = typer.Option(
            None, "--to", help="Output format: recordio-protobuf, libsvm, csv, npz "
            "(default: from OUT's extension, else recordio-protobuf)."),
        from_: str | None = typer.Option(None, "--from", help="Input format."),
        content_type: str | None = typer.Option(
            None, "--content-type", help="Input MIME type, e.g. application/x-recordio-protobuf."),
        dense: bool = typer.Option(False, "--dense", help="Write dense recordIO records "
                                   "(write_numpy_to_dense_tensor layout)."),
        zero_based: bool | None = typer.Option(
            None, "--zero-based/--one-based", help="libsvm key base of the input "
            "(default: guess) and output (default: 1-based)."),
        feature_dim: int | None = typer.Option(
            None, "--feature-dim", help="Width of the output rows (recordIO shape, CSV "
            "columns); default: stated by the input, else 1 + the largest key."),
        compressed: bool = typer.Option(False, "--compressed", help="Compress npz output."),
    ) -> None:
        """Convert data between recordIO-protobuf, libsvm, CSV and npz.

        IN may be a whole channel (its files are concatenated in sorted order). The output
        appears only when complete. recordIO output is byte-identical to the SageMaker
        SDK's writers.
        """
        import fmkit.io as fio
        from fmkit.io import formats

        started = time.perf_counter()
        out_format = (formats.codec(to).name if to
                      else formats.from_extension(dest) or "recordio-protobuf")
        files = fio.list_files(source)
        in_formats = [fio.file_format(f, from_, content_type) for f in files]
        states_dim = all(f != "libsvm" for f in in_formats)
        rows = nnz = 0
        if states_dim or feature_dim is not None or out_format == "libsvm":
            batches = fio.iter_channel(source, format=from_, content_type=content_type,
                                        rank=0, world_size=1,
                                        distribution="FullyReplicated",
                                        require_labels=False, zero_based=zero_based)
        else:  # the width is only known after reading everything
            batches = iter([fio.read(source, format=from_, content_type=content_type,
                                     zero_based=zero_based)])
        with fio.open_writer(dest, format=out_format, dense=dense,
                             zero_based=bool(zero_based), compressed=compressed,
                             feature_dim=feature_dim) as writer:
            for batch in batches:
                if feature_dim is not None:
                    batch = batch.with_feature_dim(feature_dim)
                writer.write(batch)
                rows += batch.n_rows
                nnz += batch.nnz
        typer.echo(f"wrote {rows} rows ({nnz} non-zeros) from {len(files)} file(s) to {dest} "
                   f"as {out_format} in {time.perf_counter() - started:.2f} s", err=True)

    @app.command("inspect")
    def inspect(
        source: str = typer.Argument(..., metavar="FILE|URI",
                                     help="File, folder, glob or s3://bucket/prefix."),
        content_type: str | None = typer.Option(None, "--content-type",
                                                   help="Input MIME type."),
        format: str | None = typer.Option(None, "--format", help="Input format."),
        head: int = typer.Option(3, "--head", help="Records to show."),
        zero_based: bool | None = typer.Option(None, "--zero-based/--one-based",
                                                  help="libsvm key base (default: guess)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Summarise a data file or channel and report where its first defect is.

        Prints rows, feature_dim, non-zeros, key range, the label distribution and the
        first records. A defect (bad bytes, a key beyond the shape, a non-finite value)
        is reported with its file, record or line and byte offset, and the command exits
        with status 2.
        """
        import fmkit.io as fio
        from fmkit.io import paths

        files = fio.list_files(source)
        formats = [fio.file_format(f, format, content_type) for f in files]
        report: dict[str, Any] = {
            "source": source, "files": len(files),
            "bytes": sum(paths.size(f) for f in files),
            "formats": sorted(set(formats)),
        }
        summary = _Summary(head)
        defect: FMError | None = None
        try:
            base = fio.libsvm_zero_based(files, formats, zero_based)
            for f, fmt in zip(files, formats):
                file_row = 0
                for batch in fio.iter_file(f, format=fmt, zero_based=base):
                    summary.add(batch, f, file_row)
                    file_row += batch.n_rows
            summary.check(source)
        except FMError as exc:
            defect = exc
        report.update(summary.report())
        report["first_defect"] = (None if defect is None
                                  else f"{type(defect).__name__}: {defect}")
        if as_json:
            typer.echo(json.dumps(report, indent=1))
        else:
            _print_report(report)
        if defect is not None:
            raise defect


def _print_report(r: dict[str, Any]) -> None:
    out = sys.stdout
    w = out.write
    w(f"source       {r['source']} ({r['files']} file(s), {r['bytes']} bytes, "
      f"{', '.join(r['formats'])})\n")
    w(f"rows         {r['rows']}\n")
    w(f"feature_dim  {r['feature_dim'] if r['feature_dim'] is not None else 'not stated'}\n")
    w(f"nnz          {r['nnz']}")
    if r["nnz_per_row"]:
        p = r["nnz_per_row"]
        w(f"  (per row min {p['min']}, mean {p['mean']:.2f}, max {p['max']})")
    w("\n")
    if r["keys"]:
        w(f"keys         {r['keys']['min']} .. {r['keys']['max']}\n")
    lab = r["labels"]
    if lab:
        w(f"labels       min {lab['min']:g}, max {lab['max']:g}, mean {lab['mean']:.4g}, "
          f"std {lab['std']:.4g}\n")
        if "values" in lab:
            w("             " + ", ".join(f"{k}: {v}" for k, v in lab["values"].items()) + "\n")
    if r["unlabelled_rows"]:
        w(f"unlabelled   {r['unlabelled_rows']} rows\n")
    for h in r["head"]:
        pairs = " ".join(f"{k}:{v:g}" for k, v in zip(h["keys"], h["values"]))
        label = "-" if h["label"] is None else f"{h['label']:g}"
        w(f"row {h['row']:<8} label={label} {pairs}\n")
    w(f"first defect {r['first_defect'] or 'none'}\n")
