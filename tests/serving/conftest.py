"""Fixtures: in-process clients of the server for a toy model and the SageMaker model."""

from __future__ import annotations

import warnings

import pytest

from fmkit.inference.predictor import Predictor
from helpers.s3 import moto_server, s3
from inference.toy import make_artifact

__all__ = ["moto_server", "s3"]

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def client_for(predictor=None, **config):
    from fmkit.serving.app import ServeConfig, create_app

    app = create_app(predictor=predictor, config=ServeConfig(**config))
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def binary_predictor(rng):
    return Predictor(make_artifact(rng, predictor_type="binary_classifier"))


@pytest.fixture
def client(binary_predictor):
    with client_for(binary_predictor) as c:
        yield c
