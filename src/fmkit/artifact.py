"""Model artifacts: weights, vocabulary and metadata on disk, numpy only.

A model directory holds:

- ``metadata.json``: ``format_version``, ``fmkit_version``, ``predictor_type``, ``link``
  (``identity``, ``logit`` or ``probit``), ``feature_dim``, ``num_factors``,
  ``num_samples``, ``hyperparameters``, ``solver`` and training facts (``history``...);
  ``interactions`` is ``all`` (absent: the FM's pairs between every two keys) or
  ``user_item`` (pairs only between the keys of ``user_block``, a list of ``[start, stop)``
  key runs, and all other keys: ``y = w0 + x.w + <x_U V, x_I V>``);
- ``weights.npz``: ``w0`` (S,), ``w`` (S, F) and ``V`` (S, F, K), float32, where S is the
  number of kept parameter samples: 1 for SGD/ALS models, the kept posterior samples for
  MCMC models. A prediction is the mean over samples of the per-sample link output;
- ``vocabulary.json`` (optional): raw ids <-> feature keys (:mod:`fmkit.features`);
- ``seen.npz`` (optional): the (user, item) pairs of the training data, as CSR, for
  recommendations that exclude what a user already rated.

Everything is data: no pickle. Writes go to a temporary sibling folder that is renamed
into place, so a crash never leaves a half-written model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from fmkit.config import INTERACTIONS
from fmkit.errors import ArtifactError

FORMAT_VERSION = "1.0"
METADATA = "metadata.json"
WEIGHTS = "weights.npz"
VOCABULARY = "vocabulary.json"
SEEN = "seen.npz"
LINKS = ("identity", "logit", "probit")


def _version() -> str:
    from fmkit import __version__

    return __version__


@dataclass
class Artifact:
    """A trained FM: parameters with a sample axis, plus metadata.

    Attributes
    ----------
    w0 : float32 (S,)
    w : float32 (S, F)
    V : float32 (S, F, K)
    predictor_type : {'binary_classifier', 'regressor'}
    link : {'identity', 'logit', 'probit'}
    metadata : dict
        Everything else in metadata.json (hyperparameters, history, ...).
    vocabulary : dict or None
        The parsed vocabulary.json.
    seen : csr_matrix or None
        (n_users, n_items) training interactions.
    """

    w0: npt.NDArray[np.float32]
    w: npt.NDArray[np.float32]
    V: npt.NDArray[np.float32]
    predictor_type: str
    link: str
    metadata: dict[str, Any] = field(default_factory=dict)
    vocabulary: dict[str, Any] | None = None
    seen: sp.csr_matrix | None = None

    @property
    def feature_dim(self) -> int:
        return int(self.w.shape[1])

    @property
    def num_factors(self) -> int:
        return int(self.V.shape[2])

    @property
    def num_samples(self) -> int:
        return int(self.w0.shape[0])

    @property
    def interactions(self) -> str:
        return str(self.metadata.get("interactions", "all"))

    @property
    def user_block(self) -> npt.NDArray[np.bool_] | None:
        """The keys of the user block (F,) bool for a ``user_item`` model; None otherwise."""
        if self.interactions != "user_item":
            return None
        mask = np.zeros(self.feature_dim, bool)
        for start, stop in self.metadata.get("user_block", ()):
            mask[int(start) : int(stop)] = True
        return mask

    @classmethod
    def from_point(
        cls, w0: float, w: Any, V: Any, predictor_type: str, **kw: Any
    ) -> Artifact:
        """Build a one-sample artifact from a point estimate (link from predictor_type)."""
        link = kw.pop("link", "logit" if predictor_type == "binary_classifier" else "identity")
        return cls(
            np.asarray([w0], dtype=np.float32),
            np.asarray(w, dtype=np.float32)[None, :],
            np.asarray(V, dtype=np.float32)[None, :, :],
            predictor_type,
            link,
            **kw,
        )

    def check(self) -> None:
        """Raise ArtifactError if shapes, dtypes or fields disagree."""
        s = self.w0.shape[0] if self.w0.ndim == 1 else -1
        if self.w0.ndim != 1 or self.w.ndim != 2 or self.V.ndim != 3:
            raise ArtifactError(
                f"weights must be w0 (S,), w (S, F), V (S, F, K); got {self.w0.shape}, "
                f"{self.w.shape}, {self.V.shape}."
            )
        if self.w.shape[0] != s or self.V.shape[0] != s or self.V.shape[1] != self.w.shape[1]:
            raise ArtifactError(
                f"weight shapes disagree: w0 {self.w0.shape}, w {self.w.shape}, V {self.V.shape}."
            )
        if s < 1:
            raise ArtifactError("the model has no parameter samples.")
        if self.predictor_type not in ("binary_classifier", "regressor"):
            raise ArtifactError(f"unknown predictor_type {self.predictor_type!r}.")
        if self.link not in LINKS:
            raise ArtifactError(f"unknown link {self.link!r}; known: {', '.join(LINKS)}.")
        if self.interactions not in INTERACTIONS:
            raise ArtifactError(f"unknown interactions {self.interactions!r}; known: "
                                f"{', '.join(INTERACTIONS)}.")
        if self.interactions == "user_item":
            runs = self.metadata.get("user_block")
            if not isinstance(runs, list) or not runs or not all(
                    isinstance(r, list) and len(r) == 2 and all(type(b) is int for b in r)
                    and 0 <= r[0] < r[1] <= self.feature_dim for r in runs):
                raise ArtifactError("a user_item model needs user_block: a non-empty list of "
                                    f"[start, stop) key runs within feature_dim "
                                    f"{self.feature_dim}; got {runs!r}.")
        for name in ("w0", "w", "V"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ArtifactError(f"weights {name} contain NaN or infinity.")


def group_runs(groups: npt.NDArray[np.int64]) -> list[list[int]]:
    """Return ``[[group, start, stop], ...]``: the run-length form stored in metadata."""
    if groups.size == 0:
        return []
    cut = np.flatnonzero(np.diff(groups)) + 1
    starts = np.concatenate([[0], cut])
    stops = np.concatenate([cut, [groups.size]])
    return [[int(groups[a]), int(a), int(b)] for a, b in zip(starts, stops, strict=True)]


def mask_runs(mask: npt.NDArray[np.bool_]) -> list[list[int]]:
    """Return the ``[start, stop)`` runs of True in ``mask``: how metadata stores a
    ``user_item`` model's ``user_block`` (read back by :attr:`Artifact.user_block`)."""
    return [[a, b] for inside, a, b in group_runs(np.asarray(mask, np.int64)) if inside]


def write_seen(file: Any, seen: Any) -> None:
    """Write the user x item matrix of training interactions (seen.npz) to a path or file."""
    seen = sp.csr_matrix(seen)
    np.savez(file, indices=seen.indices.astype(np.int32), indptr=seen.indptr.astype(np.int64),
             shape=np.asarray(seen.shape))


def read_seen(file: Any, source: str) -> sp.csr_matrix:
    """Read a seen.npz from a path or file; ArtifactError naming ``source`` if malformed."""
    try:
        with np.load(file, allow_pickle=False) as z:
            shape = tuple(int(x) for x in z["shape"])
            return sp.csr_matrix(
                (np.ones(z["indices"].shape[0], np.float32), z["indices"], z["indptr"]),
                shape=shape,
            )
    except (OSError, KeyError, ValueError) as exc:
        raise ArtifactError(f"{source}: cannot read: {exc}") from None


def save(artifact: Artifact, path: str | os.PathLike[str]) -> Path:
    """Write ``artifact`` to the folder ``path`` atomically; return the path.

    An existing model at ``path`` is replaced only once the new one is complete.
    """
    artifact.check()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a model folder is an ordinary folder
    try:
        np.savez(
            tmp / WEIGHTS,
            w0=np.ascontiguousarray(artifact.w0, np.float32),
            w=np.ascontiguousarray(artifact.w, np.float32),
            V=np.ascontiguousarray(artifact.V, np.float32),
        )
        meta = {
            **artifact.metadata,
            "format_version": FORMAT_VERSION,
            "fmkit_version": _version(),
            "predictor_type": artifact.predictor_type,
            "link": artifact.link,
            "feature_dim": artifact.feature_dim,
            "num_factors": artifact.num_factors,
            "num_samples": artifact.num_samples,
        }
        meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        (tmp / METADATA).write_text(json.dumps(meta, indent=2, default=_json_default))
        if artifact.vocabulary is not None:
            (tmp / VOCABULARY).write_text(json.dumps(artifact.vocabulary))
        if artifact.seen is not None:
            write_seen(tmp / SEEN, artifact.seen)
        _replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _replace_dir(src: Path, dst: Path) -> None:
    """Move folder ``src`` to ``dst``, replacing an existing folder only at the end.

    Files in an existing ``dst`` that the new model does not have (a ``metrics.json``, a
    log) are carried over, so replacing the weights never loses them.
    """
    if not dst.exists():
        os.replace(src, dst)
        return
    if not dst.is_dir():
        raise ArtifactError(f"{dst} exists and is not a folder.")
    for item in dst.iterdir():
        if not (src / item.name).exists() and not item.name.startswith(".") and item.is_file():
            shutil.copy2(item, src / item.name)
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def is_fmkit_model(path: str | os.PathLike[str]) -> bool:
    """Return True if ``path`` is a folder holding an fmkit metadata.json."""
    return (Path(path) / METADATA).is_file()


def load(path: str | os.PathLike[str]) -> Artifact:
    """Load an fmkit model folder, or a SageMaker ``model.tar.gz`` / ``model_algo-1``.

    Raises
    ------
    ArtifactError
        The folder is missing, incomplete or corrupt, or has an unknown major
        format_version.
    """
    p = Path(path)
    if not p.exists():
        raise ArtifactError(f"model path {p} does not exist.")
    if not is_fmkit_model(p):
        from fmkit.io import sagemaker_model  # numpy-only reader of SageMaker artifacts

        if sagemaker_model.is_sagemaker_model(p):
            return sagemaker_model.load(p)
        raise ArtifactError(
            f"{p} is not a model: expected {METADATA} and {WEIGHTS} (an fmkit model) or "
            "model.tar.gz / model_algo-1 (a SageMaker model)."
        )
    try:
        meta = json.loads((p / METADATA).read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{p / METADATA}: cannot read: {exc}") from None
    if not isinstance(meta, dict):
        raise ArtifactError(f"{p / METADATA}: expected a JSON object.")
    version = str(meta.get("format_version", ""))
    major = version.split(".")[0]
    if major != FORMAT_VERSION.split(".")[0]:
        raise ArtifactError(
            f"{p}: model format_version {version or '(missing)'} is not supported by this fmkit "
            f"(reads {FORMAT_VERSION}); use the fmkit version that wrote it."
        )
    try:
        with np.load(p / WEIGHTS, allow_pickle=False) as z:
            w0, w, V = z["w0"], z["w"], z["V"]
    except (OSError, KeyError, ValueError) as exc:
        raise ArtifactError(f"{p / WEIGHTS}: cannot read weights: {exc}") from None
    vocabulary = None
    if (p / VOCABULARY).is_file():
        try:
            vocabulary = json.loads((p / VOCABULARY).read_text())
        except ValueError as exc:
            raise ArtifactError(f"{p / VOCABULARY}: invalid JSON: {exc}") from None
    seen = None
    if (p / SEEN).is_file():
        seen = read_seen(p / SEEN, str(p / SEEN))
    extra = {k: v for k, v in meta.items()
             if k not in ("predictor_type", "link", "feature_dim", "num_factors", "num_samples")}
    artifact = Artifact(
        w0.astype(np.float32, copy=False),
        w.astype(np.float32, copy=False),
        V.astype(np.float32, copy=False),
        str(meta.get("predictor_type")),
        str(meta.get("link", "identity")),
        extra,
        vocabulary,
        seen,
    )
    try:
        artifact.check()
    except ArtifactError as exc:
        raise ArtifactError(f"{p}: {exc}") from None
    return artifact
