"""Fixtures for fmkit.io tests: an S3-compatible server (moto) on 127.0.0.1."""

from __future__ import annotations

from helpers.s3 import moto_server, s3

__all__ = ["moto_server", "s3"]
