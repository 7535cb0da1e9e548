"""Models as files: export to SageMaker's model.tar.gz or plain numpy arrays."""

from __future__ import annotations

from pathlib import Path


def export(model_dir: str, output: str, *, format: str) -> Path:
    """Export the model at ``model_dir`` (fmkit folder, SageMaker model or ``s3://``) as
    ``format`` ('sagemaker' or 'npz') to ``output``; return what was written."""
    from fmkit.inference.export import export as write
    from fmkit.model_store import load_model

    return write(load_model(model_dir), output, format=format)
