"""Tiny labelled channels on disk for the job services."""

from __future__ import annotations

from pathlib import Path

import pytest

import fmkit.io as fio
from fmkit.datasets.synthetic import make_planted_fm


@pytest.fixture
def channels(tmp_path: Path) -> dict[str, str]:
    data = make_planted_fm(600, 20, 3, noise=0.1, seed=3)
    out = {}
    for name, part in (("train", data.batch.slice(0, 500)), ("test", data.batch.slice(500, 600))):
        (tmp_path / name).mkdir()
        fio.write(str(tmp_path / name / f"{name}.rec"), part, format="recordio-protobuf")
        out[name] = str(tmp_path / name)
    return out
