"""Where a trained model goes: an fmkit folder (local or ``s3://``), the SageMaker
container's ``/opt/ml/model``, and SageMaker's ``model.tar.gz``.

Every layout is written completely before it becomes visible: the model folder and its
``metrics.json`` are committed together (:func:`fmkit.artifact.save`), so a crash leaves
either the old model or the new one, never new weights beside old metrics.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

METRICS = "metrics.json"


def _metrics_bytes(metrics: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(metrics), indent=2).encode()


def save_model(artifact: Any, metrics: Mapping[str, Any], model_dir: str) -> str:
    """Save the artifact with its ``metrics.json`` to a folder or an ``s3://`` prefix.

    Returns the location as given.
    """
    from fmkit.artifact import save

    save(artifact, model_dir, extra_files={METRICS: _metrics_bytes(metrics)})
    return model_dir


def save_container_model(artifact: Any, metrics: Mapping[str, Any], model_dir: Path) -> None:
    """Write ``model_algo-1`` (SageMaker's format) and fmkit's files into ``model_dir``.

    ``model_dir`` is the container's /opt/ml/model, possibly a mount point that cannot be
    replaced: the files are written under a hidden temporary folder inside it and renamed
    into place one by one, ``model_algo-1`` last.
    """
    from fmkit.io import sagemaker_model

    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fmkit-tmp-", dir=model_dir))
    try:
        save_model(artifact, metrics, str(tmp / "fmkit"))
        sagemaker_model.write(artifact, tmp / "model_algo-1")
        for item in sorted((tmp / "fmkit").iterdir()):
            os.replace(item, model_dir / item.name)
        os.replace(tmp / "model_algo-1", model_dir / "model_algo-1")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_tarball(artifact: Any, target: str) -> str:
    """Write SageMaker's ``model.tar.gz`` (with fmkit's extras) to a path or ``s3://`` URI."""
    from fmkit.io import paths, sagemaker_model

    if "://" not in target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        sagemaker_model.write(artifact, target)
        return target
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model.tar.gz"
        sagemaker_model.write(artifact, local)
        with open(local, "rb") as src, paths.atomic_write(target) as dst:
            shutil.copyfileobj(src, dst)
    return target
