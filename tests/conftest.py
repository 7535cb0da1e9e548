"""Shared fixtures: seeded rng, small planted-FM data, the shared data folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

SHARED = Path(os.environ.get("FMKIT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
ML100K = SHARED / "data" / "ml-100k"
SAGEMAKER_U1 = SHARED / "data" / "sagemaker-fm-u1"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def ml100k() -> Path:
    if not (ML100K / "ua.base").is_file():
        pytest.skip("MovieLens 100K not found under ../shared/data/ml-100k")
    return ML100K


@pytest.fixture
def sagemaker_u1() -> Path:
    if not (SAGEMAKER_U1 / "model.tar.gz").is_file():
        pytest.skip("the SageMaker u1 artifact is not under ../shared/data/sagemaker-fm-u1")
    return SAGEMAKER_U1


@pytest.fixture(autouse=True)
def _fmkit_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Keep every test's registry and artifacts out of the user's ~/.fmkit."""
    monkeypatch.setenv("FMKIT_HOME", str(tmp_path_factory.mktemp("fmkit_home")))
