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

Everything is data: no pickle. A model folder is committed in one step (:func:`save`): the
complete new folder is written under a temporary sibling, then swapped with the old one, so
a crash leaves either the old model or the new one, never a mix and never no folder
(:mod:`fmkit.io.folders`). Files the caller adds (``metrics.json``) are part of the same
commit.

This module reads and writes fmkit folders only; :func:`fmkit.model_store.load_model` loads
any model (fmkit folder or SageMaker artifact, local or ``s3://``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from fmkit.config import INTERACTIONS
from fmkit.errors import ArtifactError
from fmkit.io import folders, paths

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


def save(artifact: Artifact, path: str | os.PathLike[str], *,
         extra_files: Mapping[str, bytes | str] | None = None) -> Path | str:
    """Write ``artifact`` to the folder ``path`` in one commit; return the path.

    Parameters
    ----------
    artifact : Artifact
    path : path-like or str
        A local folder, or an ``s3://bucket/prefix`` (any fsspec URI) for the model folder.
    extra_files : mapping of str to bytes or str, optional
        More files of the model folder, written with it, e.g. ``{"metrics.json": ...}``
        (str is written as UTF-8). Plain file names only; they cannot replace the model's
        own files (metadata.json, weights.npz, vocabulary.json, seen.npz).

    Returns
    -------
    Path or str
        The folder (a ``str`` URI for remote storage).

    Notes
    -----
    Local folders: the complete new folder (weights, vocabulary, seen items, the extra
    files, metadata.json last) is written and flushed to disk under a temporary sibling
    ``.<name>.tmp-<pid>-<random>``, then replaces ``path``. On Linux the two folders are
    swapped in one ``renameat2(RENAME_EXCHANGE)`` call, so ``path`` always names a
    complete model, the old one or the new one, and a reader never sees the folder
    missing; the old folder is then deleted. Nothing of the old folder survives in the new
    one (a model trained without a vocabulary leaves no vocabulary.json behind). Where the
    exchange is not available (other systems, or a file system without it) the old folder
    is renamed away and the new one renamed into place: two renames, with a moment in
    between when ``path`` does not exist. Temporary siblings left by a writer that was
    killed are removed by the next save.

    Remote folders (``s3://``): the folder is written locally first, then every old object
    under the prefix is deleted, metadata.json first, and the new files are uploaded with
    metadata.json last. Loading refuses a remote folder without metadata.json, so a reader
    sees the old model, an incomplete folder it refuses with a clear error, or the new
    model; never a mix.

    Raises
    ------
    ArtifactError
        The artifact is inconsistent, ``path`` exists and is not a folder, or an extra file
        name is not allowed.
    """
    artifact.check()
    extras = _check_extra_files(extra_files)
    if paths.is_remote(path):
        return _save_remote(artifact, str(path), extras)
    target = Path(paths.local_path(path))
    if target.exists() and not target.is_dir():
        raise ArtifactError(f"{target} exists and is not a folder; cannot save a model there.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = folders.new_sibling(target)
    try:
        write_folder(artifact, tmp, extras, sync=True)
        folders.commit(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ArtifactError(f"cannot save the model to {target}: "
                            f"{exc.strerror or exc}.") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


_OWN_FILES = (METADATA, WEIGHTS, VOCABULARY, SEEN)


def _check_extra_files(extra_files: Mapping[str, bytes | str] | None) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name, data in (extra_files or {}).items():
        if (not isinstance(name, str) or not name or name in (".", "..") or "/" in name
                or "\\" in name or name.startswith(".")):
            raise ArtifactError(f"extra file name {name!r}: give a plain file name such as "
                                "'metrics.json'.")
        if name in _OWN_FILES:
            raise ArtifactError(f"extra file {name!r} would replace the model's own {name}.")
        out[name] = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return out


def write_folder(artifact: Artifact, folder: Path, extra_files: Mapping[str, bytes],
                 *, sync: bool = False) -> None:
    """Write the model's files into the existing empty ``folder``, metadata.json last.

    With ``sync`` every file and the folder are flushed to disk before returning, so that
    a rename that follows never publishes files whose data is still only in memory.
    """
    np.savez(
        folder / WEIGHTS,
        w0=np.ascontiguousarray(artifact.w0, np.float32),
        w=np.ascontiguousarray(artifact.w, np.float32),
        V=np.ascontiguousarray(artifact.V, np.float32),
    )
    written = [WEIGHTS]
    if artifact.vocabulary is not None:
        (folder / VOCABULARY).write_text(json.dumps(artifact.vocabulary))
        written.append(VOCABULARY)
    if artifact.seen is not None:
        write_seen(folder / SEEN, artifact.seen)
        written.append(SEEN)
    for name, data in extra_files.items():
        (folder / name).write_bytes(data)
        written.append(name)
    (folder / METADATA).write_text(json.dumps(_metadata(artifact), indent=2,
                                              default=_json_default))
    written.append(METADATA)
    if sync:
        for name in written:
            folders.fsync(folder / name)
        folders.fsync(folder)


def _metadata(artifact: Artifact) -> dict[str, Any]:
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
    return meta


def _save_remote(artifact: Artifact, uri: str, extras: Mapping[str, bytes]) -> str:
    """:func:`save` to an ``s3://`` (fsspec) folder: old objects out, metadata.json last."""
    uri = uri.rstrip("/")
    fs, base = paths.filesystem(uri)
    with tempfile.TemporaryDirectory(prefix="fmkit-model-") as local:
        folder = Path(local)
        write_folder(artifact, folder, extras)
        with paths.storage_errors(uri, "save the model to"):
            with contextlib.suppress(Exception):
                fs.invalidate_cache(base)  # another process may have written there
            old = [p for p in fs.find(base) if p.startswith(base + "/")]
            meta_key = f"{base}/{METADATA}"
            if meta_key in old:  # first: from here on loaders refuse the folder
                fs.rm_file(meta_key)
            for key in old:
                if key != meta_key:
                    fs.rm_file(key)
            names = sorted(p.name for p in folder.iterdir() if p.name != METADATA)
            for name in names:
                fs.put_file(str(folder / name), f"{base}/{name}")
            fs.put_file(str(folder / METADATA), meta_key)
            with contextlib.suppress(Exception):
                fs.invalidate_cache(base)
    return uri

def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def is_fmkit_model(path: str | os.PathLike[str]) -> bool:
    """Return True if ``path`` is a local folder holding an fmkit metadata.json."""
    return (Path(path) / METADATA).is_file()


def load(path: str | os.PathLike[str]) -> Artifact:
    """Load an fmkit model folder (local).

    A SageMaker ``model.tar.gz`` / ``model_algo-1`` and ``s3://`` folders load through
    :func:`fmkit.model_store.load_model`.

    Raises
    ------
    ArtifactError
        The folder is missing, incomplete or corrupt, is not an fmkit model, or has an
        unknown major format_version.
    """
    p = Path(path)
    if not p.exists():
        raise ArtifactError(f"model path {p} does not exist.")
    if not p.is_dir():
        raise ArtifactError(f"{p} is not an fmkit model folder (expected a folder with "
                            f"{METADATA} and {WEIGHTS}).")
    for _ in range(_LOAD_ATTEMPTS):
        try:
            return _load_folder(p)
        except _Replaced:
            continue
    raise ArtifactError(f"{p}: the model was replaced {_LOAD_ATTEMPTS} times while loading; "
                        "retry.")  # pragma: no cover - a writer saving without pause


_LOAD_ATTEMPTS = 10


class _Replaced(Exception):
    """The folder was swapped for a new model while being read."""


def _load_folder(p: Path) -> Artifact:
    try:
        return _read_folder(p)
    except OSError as exc:
        raise ArtifactError(f"{p}: cannot read: {exc.strerror or exc}.") from None


def _read_folder(p: Path) -> Artifact:
    with folders.FolderReader(p) as folder:
        fh = folder.open(METADATA)
        if fh is None:
            if not folder.still_current():
                raise _Replaced
            raise ArtifactError(
                f"{p} is not an fmkit model: no {METADATA}. An fmkit model folder holds "
                f"{METADATA} and {WEIGHTS}; SageMaker's model.tar.gz loads with "
                "fmkit.model_store.load_model.")
        with fh:
            try:
                meta = json.loads(fh.read())
            except (OSError, ValueError) as exc:
                raise ArtifactError(f"{p / METADATA}: cannot read: {exc}") from None
        if not isinstance(meta, dict):
            raise ArtifactError(f"{p / METADATA}: expected a JSON object.")
        version = str(meta.get("format_version", ""))
        major = version.split(".")[0]
        if major != FORMAT_VERSION.split(".")[0]:
            raise ArtifactError(
                f"{p}: model format_version {version or '(missing)'} is not supported by this "
                f"fmkit (reads {FORMAT_VERSION}); use the fmkit version that wrote it."
            )
        fh = folder.open(WEIGHTS)
        if fh is None:
            _raise_missing(folder, p / WEIGHTS)
        try:
            with fh, np.load(fh, allow_pickle=False) as z:
                w0, w, V = z["w0"], z["w"], z["V"]
        except (OSError, KeyError, ValueError) as exc:
            raise ArtifactError(f"{p / WEIGHTS}: cannot read weights: {exc}") from None
        vocabulary = None
        fh = folder.open(VOCABULARY)
        if fh is not None:
            with fh:
                try:
                    vocabulary = json.loads(fh.read())
                except ValueError as exc:
                    raise ArtifactError(f"{p / VOCABULARY}: invalid JSON: {exc}") from None
        seen = None
        fh = folder.open(SEEN)
        if fh is not None:
            with fh:
                seen = read_seen(fh, str(p / SEEN))
        if not folder.still_current():  # swapped out (and being deleted) while read
            raise _Replaced
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


def _raise_missing(folder: folders.FolderReader, path: Path) -> None:
    """A file named by metadata.json is gone: the folder was replaced meanwhile, or is
    incomplete."""
    if not folder.still_current():  # the folder held was swapped out and is being deleted
        raise _Replaced
    raise ArtifactError(f"{path}: missing; the model folder is incomplete.")
