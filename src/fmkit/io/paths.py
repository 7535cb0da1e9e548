"""Local paths and remote URIs (``s3://``, any fsspec protocol): open, list, write atomically.

Local paths (and ``file://``) use the operating system directly; anything with another
``protocol://`` goes through fsspec, so ``s3://`` needs the ``s3`` extra (s3fs).

S3 settings come from the usual AWS environment and config files (credentials, region).
The endpoint of an S3-compatible server (MinIO, moto, ...) is read here from
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` and passed to s3fs explicitly, with short
connect timeouts and few retries so that an unreachable endpoint fails in seconds.

Storage failures become :class:`~fmkit.errors.DataError` naming the URI; outputs are
written to a temporary name and renamed (local) or uploaded when complete (remote).
"""

from __future__ import annotations

import contextlib
import glob as _glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import IO, Any, BinaryIO

from fmkit.errors import DataError, FMError

_GLOB_CHARS = ("*", "?", "[")
#: folder and file names skipped when listing a channel (hidden files, temporary outputs)
_HIDDEN_PREFIXES = (".", "_")


def is_remote(uri: str | os.PathLike[str]) -> bool:
    """Return True for ``protocol://`` URIs other than ``file://``."""
    text = os.fspath(uri)
    return "://" in text and not text.startswith("file://")


def local_path(uri: str | os.PathLike[str]) -> str:
    """Return the filesystem path of a local path or ``file://`` URI."""
    text = os.fspath(uri)
    return text[len("file://"):] if text.startswith("file://") else text


def has_glob(uri: str) -> bool:
    """Return True when ``uri`` contains glob characters (``*``, ``?``, ``[``)."""
    return any(c in uri for c in _GLOB_CHARS)


def _is_storage_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return isinstance(exc, OSError) or module.split(".")[0] in (
        "botocore", "aiobotocore", "s3fs", "fsspec", "aiohttp", "urllib3")


@contextlib.contextmanager
def storage_errors(uri: str, action: str) -> Iterator[None]:
    """Turn OS, fsspec and botocore failures inside the block into DataError naming ``uri``."""
    try:
        yield
    except FMError:
        raise
    except Exception as exc:
        if not _is_storage_error(exc):
            raise
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, FileNotFoundError):
            reason = f"not found ({reason})"
        elif isinstance(exc, PermissionError):
            reason = f"access denied ({reason})"
        raise DataError(f"cannot {action} {uri}: {reason}").with_traceback(None) from None


def filesystem(uri: str) -> tuple[Any, str]:
    """Return ``(fsspec filesystem, path without protocol)`` for a remote URI."""
    protocol, _, rest = uri.partition("://")
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec is a dependency
        raise DataError(f"{uri}: remote paths need fsspec: pip install fsspec") from None
    options: dict[str, Any] = {}
    if protocol in ("s3", "s3a"):
        protocol = "s3"
        try:
            import s3fs  # noqa: F401
        except ImportError:
            raise DataError(f"{uri}: s3:// paths need the 's3' extra: pip install "
                            "'fmkit[s3]'") from None
        # AWS SDK configuration that botocore >= 1.31 reads itself and older versions under
        # s3fs do not; not an fmkit setting (those are read in registry/home.py and front ends)
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        options = {
            "use_listings_cache": False,
            "config_kwargs": {"connect_timeout": 5, "read_timeout": 60,
                              "retries": {"max_attempts": 2, "mode": "standard"}},
        }
        if endpoint:
            options["endpoint_url"] = endpoint
    with storage_errors(uri, "open the filesystem of"):
        fs = fsspec.filesystem(protocol, **options)
    return fs, rest


def join(uri: str, name: str) -> str:
    """Join a folder URI or path and a relative name with '/'."""
    return uri.rstrip("/") + "/" + name.lstrip("/")


def open_file(uri: str, mode: str = "rb") -> IO[Any]:
    """Open a local path or remote URI for reading (``'rb'``) or plain writing.

    For outputs prefer :func:`atomic_write`, which never leaves a partial file.

    Raises
    ------
    DataError
        The file cannot be opened (missing, access denied, unreachable endpoint).
    """
    with storage_errors(uri, "open"):
        if is_remote(uri):
            fs, path = filesystem(uri)
            if "r" in mode and not fs.isfile(path):
                raise FileNotFoundError(path)
            return fs.open(path, mode)  # type: ignore[no-any-return]
        return open(local_path(uri), mode)


def size(uri: str) -> int:
    """Return the size of a file in bytes."""
    with storage_errors(uri, "stat"):
        if is_remote(uri):
            fs, path = filesystem(uri)
            return int(fs.size(path))
        return os.path.getsize(local_path(uri))


def exists(uri: str) -> bool:
    """Return True if a file or folder exists at ``uri``."""
    with storage_errors(uri, "check"):
        if is_remote(uri):
            fs, path = filesystem(uri)
            return bool(fs.exists(path))
        return os.path.exists(local_path(uri))


def _visible(relative: str) -> bool:
    return not any(part.startswith(_HIDDEN_PREFIXES) for part in relative.split("/") if part)


def find_files(uri: str) -> list[str]:
    """List the files a channel URI names, sorted by path; possibly empty.

    ``uri`` is a file, a folder (all files below it, recursively, except names starting
    with '.' or '_'), a glob (``data/part-*.rec``, ``s3://b/p/*.rec``), or for remote
    storage a key prefix (``s3://bucket/train`` also matches ``train-0.rec``).
    """
    if is_remote(uri):
        protocol = uri.partition("://")[0]
        fs, path = filesystem(uri)
        with storage_errors(uri, "list"):
            if has_glob(path):
                found = [p for p in fs.glob(path) if fs.isfile(p)]
            elif path and not path.endswith("/") and fs.isfile(path):
                found = [path]
            else:
                base = path.rstrip("/")
                found = [p for p in fs.find(base) if _visible(p[len(base):])]
                if not found and "/" in base and not path.endswith("/"):
                    parent, _, stem = base.rpartition("/")
                    found = [p for p in fs.find(parent, prefix=stem)
                             if p.startswith(base) and _visible(p[len(parent):])]
        return sorted(f"{protocol}://{p}" for p in found)
    path = local_path(uri)
    if has_glob(path):
        return sorted(p for p in _glob.glob(path, recursive=True) if os.path.isfile(p))
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        out = []
        for root, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(_HIDDEN_PREFIXES)]
            out.extend(os.path.join(root, f) for f in files
                       if not f.startswith(_HIDDEN_PREFIXES))
        return sorted(out)
    raise DataError(f"{uri}: no such file or folder.")


@contextlib.contextmanager
def atomic_write(uri: str) -> Iterator[BinaryIO]:
    """Open ``uri`` for writing so that it appears only complete.

    Local: write ``.<name>.<random>.tmp`` in the same folder, then rename over ``uri``.
    Remote: write a local temporary file and upload it when the block succeeds. On an
    exception nothing is left behind.
    """
    if is_remote(uri):
        fd, tmp = tempfile.mkstemp(prefix="fmkit-upload-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
            fs, path = filesystem(uri)
            with storage_errors(uri, "upload to"):
                fs.put_file(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return
    path = local_path(uri)
    folder = os.path.dirname(os.path.abspath(path))
    with storage_errors(uri, "write"):
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                   dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        with storage_errors(uri, "write"):
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp files are private; data files are not
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def upload_dir(local_dir: str, uri: str) -> None:
    """Copy a local folder's files to ``uri`` (a folder or ``s3://bucket/prefix``)."""
    if not os.path.isdir(local_dir):
        raise DataError(f"{local_dir}: not a folder.")
    if not is_remote(uri):
        dest = local_path(uri)
        with storage_errors(uri, "copy to"):
            shutil.copytree(local_dir, dest, dirs_exist_ok=True)
        return
    fs, path = filesystem(uri)
    with storage_errors(uri, "upload to"):
        for root, _, files in os.walk(local_dir):
            for name in sorted(files):
                src = os.path.join(root, name)
                rel = os.path.relpath(src, local_dir).replace(os.sep, "/")
                fs.put_file(src, join(path, rel))


def download_dir(uri: str, local_dir: str) -> None:
    """Copy every file under ``uri`` (folder or prefix) into ``local_dir``, keeping layout."""
    if not is_remote(uri):
        with storage_errors(uri, "copy"):
            shutil.copytree(local_path(uri), local_dir, dirs_exist_ok=True)
        return
    fs, path = filesystem(uri)
    base = path.rstrip("/")
    with storage_errors(uri, "download"):
        files = fs.find(base)
        if not files:
            raise DataError(f"{uri}: no files found to download.")
        for remote in files:
            rel = remote[len(base):].lstrip("/") or os.path.basename(remote)
            dest = os.path.join(local_dir, *rel.split("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            fs.get_file(remote, dest)
