"""Export a model: SageMaker's ``model.tar.gz``, or plain arrays and embeddings in an ``.npz``.

- ``sagemaker``: ``model.tar.gz`` holding ``model_algo-1`` byte-compatible with SageMaker's
  (loadable by SageMaker's FM container and by MXNet), plus fmkit's ``vocabulary.json`` and
  ``seen.npz`` when the model has them (:func:`fmkit.io.sagemaker_model.write`). One-sample
  models with all pairwise interactions only (SGD, ALS): SageMaker's FM cannot express
  MCMC samples, the probit link or ``user_item`` models' pairs restricted to user x item.
- ``npz``: ``w0`` (S,), ``w`` (S, F), ``V`` (S, F, K) float32 as in the artifact; for a
  ``user_item`` model also ``interactions`` (the str ``"user_item"``) and ``user_block``
  (F,) bool, the keys of the user block (:attr:`fmkit.artifact.Artifact.user_block`); with
  a vocabulary also ``vocabulary_json`` (the vocabulary as a JSON string), ``user_ids``,
  ``item_ids`` (str) and ``user_embeddings`` (U, K), ``item_embeddings`` (I, K): each
  entity's summed factors ``sum_j x_j V_j`` over its one-hot key and side features,
  averaged over samples. For a one-sample ``user_item`` model whose user rows lie in the
  user block and item rows outside it (as with ``fmkit prepare``'s vocabularies), the dot
  product of a user's and an item's embeddings is exactly the model's interaction term
  for that pair (with several samples the embeddings are posterior means, and the mean
  of the per-sample products differs). Loads with ``np.load(path)`` (no pickle).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from fmkit.artifact import Artifact
from fmkit.errors import ConfigError
from fmkit.io import paths

FORMATS = ("sagemaker", "npz")


def export(artifact: Artifact, output: str | os.PathLike[str], *, format: str) -> Path:
    """Write ``artifact`` to ``output`` in ``format``; return the file written.

    ``output`` may be a folder; the file is then ``model.tar.gz`` or ``model.npz`` in it.

    Raises
    ------
    ConfigError
        Unknown format.
    ArtifactError
        ``sagemaker`` for a model SageMaker cannot express (MCMC samples, probit link,
        ``user_item`` interactions; :func:`fmkit.io.sagemaker_model.model_bytes`); nothing
        is written.
    """
    if format not in FORMATS:
        raise ConfigError(f"export format must be one of {', '.join(FORMATS)}; got {format!r}.")
    out = Path(output)
    if out.is_dir() or (not out.suffix and not out.exists()):
        out = out / ("model.tar.gz" if format == "sagemaker" else "model.npz")
    if format == "sagemaker":
        from fmkit.io.sagemaker_model import write

        return write(artifact, out)
    return write_npz(artifact, out)


def write_npz(artifact: Artifact, path: str | os.PathLike[str]) -> Path:
    """Write the arrays and embeddings described in the module docstring, atomically."""
    artifact.check()
    target = Path(path)
    arrays: dict[str, np.ndarray] = {"w0": artifact.w0, "w": artifact.w, "V": artifact.V}
    if artifact.user_block is not None:
        arrays["interactions"] = np.asarray(artifact.interactions)
        arrays["user_block"] = artifact.user_block
    if artifact.vocabulary is not None:
        from fmkit.features.vocabulary import Vocabulary

        vocab = Vocabulary.from_dict(artifact.vocabulary, source="model vocabulary")
        arrays["vocabulary_json"] = np.asarray(json.dumps(vocab.to_dict()))
        for role, name in (("user", vocab.user_field), ("item", vocab.item_field)):
            if name is None or vocab.field(name).ids is None:
                continue
            ids = list(vocab.ids(name))
            rows = vocab.entity_rows(role, ids)
            emb = np.mean([np.asarray(rows @ artifact.V[s]) for s in range(artifact.num_samples)],
                          axis=0)
            arrays[f"{role}_ids"] = np.asarray(ids, dtype=str)
            arrays[f"{role}_embeddings"] = emb.astype(np.float32)
    with paths.atomic_write(str(target)) as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    return target
