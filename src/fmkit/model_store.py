"""The model store: one :func:`load_model` over every kind of saved model, numpy only.

A model is any of:

- an fmkit model folder (:mod:`fmkit.artifact`: ``metadata.json``, ``weights.npz``...);
- SageMaker's ``model.tar.gz`` or ``model_algo-1``, or a folder holding one
  (:mod:`fmkit.io.sagemaker_model`);

each as a local path or a remote URI (``s3://bucket/prefix``, any fsspec protocol; the
``s3`` extra). Remote models are downloaded to a temporary folder, loaded into memory and
the folder deleted. A remote fmkit folder must hold ``metadata.json``: :func:`fmkit.artifact.save`
uploads it last, so a folder without it is incomplete (still being written, or a write that
failed) and is refused.

Layers: this module sits above :mod:`fmkit.artifact` and :mod:`fmkit.io.sagemaker_model`
(neither imports the other's loader) and below inference, serving and the jobs.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from fmkit import artifact as fmkit_artifact
from fmkit.artifact import METADATA, WEIGHTS, Artifact
from fmkit.errors import ArtifactError, DataError
from fmkit.io import paths, sagemaker_model

__all__ = ["attach_vocabulary", "describe", "load_model"]

logger = logging.getLogger(__name__)

_ATTEMPTS = 3


def load_model(path: str | os.PathLike[str], *,
               vocabulary: str | os.PathLike[str] | None = None) -> Artifact:
    """Load a model: an fmkit folder or a SageMaker artifact, local or ``s3://``.

    Parameters
    ----------
    path : path-like or str
        A local folder or file, a ``file://`` URI, or a remote URI such as
        ``s3://bucket/models/fm64`` (a folder: its objects under ``fm64/``) or
        ``s3://bucket/job/output/model.tar.gz``.
    vocabulary : path-like, optional
        A vocabulary.json (or a folder holding one) to attach to the model, replacing its
        own: a SageMaker model has none, and recommendations by raw id need one.

    Returns
    -------
    Artifact

    Raises
    ------
    ArtifactError
        Nothing is there, it is not a model, a remote fmkit folder has no metadata.json, or
        the model is corrupt, or the vocabulary's feature_dim differs from the model's;
        the message names the path or URI.
    DataError
        The vocabulary cannot be read.
    """
    text = os.fspath(path)
    if paths.is_remote(text):
        model = _load_remote(text)
    else:
        p = Path(paths.local_path(text))
        if not p.exists():
            raise ArtifactError(f"model path {p} does not exist.")
        model = _load_local(p, str(p))
    if vocabulary is not None:
        attach_vocabulary(model, vocabulary)
    return model


def attach_vocabulary(model: Artifact, vocabulary: str | os.PathLike[str]) -> None:
    """Set ``model.vocabulary`` from a vocabulary.json; ArtifactError if the dims differ."""
    from fmkit.features.vocabulary import Vocabulary

    vocab = Vocabulary.load(vocabulary)
    if vocab.feature_dim != model.feature_dim:
        raise ArtifactError(f"vocabulary {os.fspath(vocabulary)} has feature_dim "
                            f"{vocab.feature_dim} but the model has {model.feature_dim}.")
    model.vocabulary = vocab.to_dict()


def describe(path: str | os.PathLike[str]) -> str:
    """Return what ``path`` holds: ``'fmkit'``, ``'sagemaker'`` or ``'none'`` (local only)."""
    p = Path(paths.local_path(os.fspath(path)))
    if fmkit_artifact.is_fmkit_model(p):
        return "fmkit"
    return "sagemaker" if sagemaker_model.is_sagemaker_model(p) else "none"


def _load_local(p: Path, shown: str) -> Artifact:
    kind = describe(p)
    if kind == "fmkit":
        return fmkit_artifact.load(p)
    if kind == "sagemaker":
        return sagemaker_model.load(p)
    raise ArtifactError(
        f"{shown} is not a model: expected {METADATA} and {WEIGHTS} (an fmkit model) or "
        "model.tar.gz / model_algo-1 (a SageMaker model)."
    )


def _load_remote(uri: str) -> Artifact:
    uri = uri.rstrip("/")
    fs, base = paths.filesystem(uri)
    with paths.storage_errors(uri, "load the model from"):
        if fs.isfile(base):  # a model.tar.gz / model_algo-1 object
            return _download_and_load(fs, base.rpartition("/")[0], [base], uri)
        for attempt in range(_ATTEMPTS):
            _forget_listings(fs, base)
            keys = sorted(k for k in fs.find(base) if k.startswith(base + "/"))
            if not keys:
                raise ArtifactError(f"model {uri} does not exist (no objects under "
                                    f"{uri}/).")
            # the folder's own files: what an fmkit model folder holds (no subfolders)
            top = [k for k in keys if "/" not in k[len(base) + 1:]]
            names = {k[len(base) + 1:] for k in top}
            if METADATA not in names:
                found = _sagemaker_keys(base, keys)
                if found:
                    return _download_and_load(fs, base, found, uri)
                raise ArtifactError(
                    f"{uri} has no {METADATA}: the model folder is incomplete (still being "
                    "written, or its upload failed), or not an fmkit model; save it again "
                    "or point at a folder written by fmkit train.")
            before = _version_of(fs, f"{base}/{METADATA}")
            try:
                model = _download_and_load(fs, base, top, uri)
            except (ArtifactError, DataError, FileNotFoundError):
                if attempt == _ATTEMPTS - 1:
                    raise
                model = None  # a save may have replaced objects meanwhile: look again
            if model is not None and _version_of(fs, f"{base}/{METADATA}") == before:
                return model
            logger.info("%s changed while loading; loading it again", uri)
    raise ArtifactError(f"{uri}: the model changed {_ATTEMPTS} times while loading; retry.")


def _sagemaker_keys(base: str, keys: list[str]) -> list[str]:
    """The SageMaker model file under ``base`` (the shallowest, then the first by name)
    and, beside a bare model_algo-1, fmkit's extras; [] when there is none."""
    wanted = (sagemaker_model.MODEL_MEMBER, sagemaker_model.TARBALL)
    found = [k for k in keys if k.rpartition("/")[2] in wanted]
    if not found:
        return []
    first = min(found, key=lambda k: (k.count("/"), k.rpartition("/")[2] != wanted[0], k))
    folder = first.rpartition("/")[0]
    extras = [f"{folder}/{name}" for name in sagemaker_model.EXTRA_MEMBERS
              if f"{folder}/{name}" in keys] if first.endswith(wanted[0]) else []
    return [first, *extras]


def _forget_listings(fs: object, base: str) -> None:
    """Drop fsspec's cached listings of ``base``: another process may have saved there."""
    invalidate = getattr(fs, "invalidate_cache", None)
    if invalidate is not None:
        invalidate(base)


def _version_of(fs: object, key: str) -> object:
    """An identity of the object's current version (ETag, else modification time)."""
    invalidate = getattr(fs, "invalidate_cache", None)
    if invalidate is not None:
        invalidate(key)
    try:
        info = fs.info(key)  # type: ignore[attr-defined]
    except FileNotFoundError:
        return None
    return info.get("ETag") or info.get("LastModified") or info.get("mtime")


def _download_and_load(fs: object, base: str, keys: list[str], uri: str) -> Artifact:
    """Download ``keys`` (objects below ``base``, or the object ``base`` names) into a
    temporary folder, keeping their layout, and load the model it then holds."""
    with tempfile.TemporaryDirectory(prefix="fmkit-model-") as tmp:
        for key in keys:
            rel = key[len(base) + 1:] if key.startswith(base + "/") else key.rpartition("/")[2]
            dest = Path(tmp, *rel.split("/"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(key, str(dest))  # type: ignore[attr-defined]
        try:
            return _load_local(Path(tmp), uri)
        except ArtifactError as exc:
            raise ArtifactError(str(exc).replace(tmp, uri)) from None
