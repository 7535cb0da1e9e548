"""``fmkit convert`` and ``fmkit inspect``: round trips, reports, exit codes, no partial output."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli import run_cli as run

import fmkit.io as fio
from fmkit.sparse import SparseBatch

U1_SHA256 = "8eb845266955272b1f9c75f23916db21fabec2137460e6b75c7ab37aab8f8267"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() configures logging on the captured stderr; leave no handler bound to it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)



def test_convert_sdk_file_to_npz_and_back_is_byte_identical(
    sagemaker_u1: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(sagemaker_u1 / "test.protobuf")
    code, _, err = run(capsys, "convert", src, str(tmp_path / "u1.npz"))
    assert code == 0 and "wrote 20000 rows (40000 non-zeros)" in err
    code, _, _ = run(capsys, "convert", str(tmp_path / "u1.npz"), str(tmp_path / "back"),
                     "--to", "recordio-protobuf")
    assert code == 0
    assert hashlib.sha256((tmp_path / "back").read_bytes()).hexdigest() == U1_SHA256
    # through libsvm (no stated width) with --feature-dim, too
    run(capsys, "convert", src, str(tmp_path / "u1.svm"))
    code, _, _ = run(capsys, "convert", str(tmp_path / "u1.svm"), str(tmp_path / "b2.rec"),
                     "--feature-dim", "2625")
    assert code == 0
    assert hashlib.sha256((tmp_path / "b2.rec").read_bytes()).hexdigest() == U1_SHA256


def test_inspect_reports_counts_labels_and_head(
    sagemaker_u1: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "inspect", str(sagemaker_u1 / "test.protobuf"), "--head", "2")
    assert code == 0
    assert "rows         20000" in out and "feature_dim  2625" in out
    assert "1: 1391, 2: 2192, 3: 5182, 4: 6778, 5: 4457" in out
    assert "row 0        label=5 0:1 948:1" in out
    assert "first defect none" in out


def test_inspect_json_and_libsvm_channel(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.svm").write_text("1 1:1 5:2\n0 3:1\n")
    (tmp_path / "b.svm").write_text("1 2:0.5\n")
    code, out, _ = run(capsys, "inspect", str(tmp_path), "--json", "--head", "1")
    report = json.loads(out)
    assert code == 0
    assert report["files"] == 2 and report["rows"] == 3 and report["nnz"] == 4
    assert report["feature_dim"] is None and report["keys"] == {"min": 0, "max": 4}
    assert report["labels"]["values"] == {"0": 1, "1": 2}
    assert report["head"] == [{"file": str(tmp_path / "a.svm"), "row": 0, "label": 1.0,
                               "keys": [0, 4], "values": [1.0, 2.0]}]


def test_inspect_names_the_first_defect_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = SparseBatch.from_arrays([1, 2, 3], [0, 1, 2, 3], [1, 1, 1], [1, 0, 1],
                                    feature_dim=10)
    fio.write(str(tmp_path / "t.rec"), batch)
    data = (tmp_path / "t.rec").read_bytes()
    (tmp_path / "t.rec").write_bytes(data[:-10])
    code, out, err = run(capsys, "inspect", str(tmp_path / "t.rec"))
    assert code == 2
    assert "rows         2" in out
    assert "first defect FormatError:" in out and "record 2 at byte" in out
    assert err.startswith("error: FormatError:") and "t.rec, record 2 at byte" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1,2,x\n", r"bad\.csv, line 1 at byte 0, column 3: 'x' is not a number"),
        ("", r"bad\.csv: the file is empty"),
    ],
)
def test_convert_failures_exit_2_without_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    import re

    (tmp_path / "bad.csv").write_text(content)
    out = tmp_path / "out" / "o.rec"
    code, _, err = run(capsys, "convert", str(tmp_path / "bad.csv"), str(out))
    assert code == 2 and err.startswith("error: ")
    assert re.search(message, err)
    assert not out.exists()
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_convert_empty_folder_and_unknown_format(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    code, _, err = run(capsys, "convert", str(tmp_path / "in"), str(tmp_path / "o.rec"))
    assert code == 2 and "no data files found" in err
    code, _, err = run(capsys, "convert", str(tmp_path / "in"), str(tmp_path / "o.x"),
                       "--to", "parquet")
    assert code == 2 and "unknown data format 'parquet'" in err


def test_inspect_reports_non_finite_values(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.csv").write_text("1,0,2\n0,inf,1\n")
    code, out, err = run(capsys, "inspect", str(tmp_path / "x.csv"))
    assert code == 2
    assert "x.csv, row 1: feature value inf is not finite" in err
    assert "first defect DataError" in out
