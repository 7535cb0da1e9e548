"""Local folders written in one commit and read consistently (numpy-free, stdlib only).

A writer builds the complete new folder under a temporary sibling (:func:`new_sibling`),
flushes it (:func:`fsync`) and swaps it with the old folder (:func:`commit`); readers hold
the folder open (:class:`FolderReader`) so that every file they read comes from the same
folder, and they can tell when a commit replaced it meanwhile. :func:`fmkit.artifact.save`
commits model folders this way.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)


def new_sibling(target: Path) -> Path:
    """Create and return an empty folder ``.<name>.tmp-<pid>-<random>`` beside ``target``,
    with ordinary permissions, after removing those of writers that died."""
    remove_stale_siblings(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the folder is an ordinary folder
    return tmp


def fsync(path: Path) -> None:
    """Flush a file or folder to disk (best effort: skipped where the system refuses)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # pragma: no cover - folders cannot be opened on Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: Any = None


def exchange(a: Path, b: Path) -> bool:
    """Swap folders ``a`` and ``b`` atomically (Linux ``renameat2(RENAME_EXCHANGE)``, through
    ctypes); return False where that is not available."""
    global _renameat2
    if not sys.platform.startswith("linux"):
        return False
    if _renameat2 is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            _renameat2 = libc.renameat2
            _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                   ctypes.c_char_p, ctypes.c_uint]
            _renameat2.restype = ctypes.c_int
        except (OSError, AttributeError):  # pragma: no cover - glibc < 2.28, musl
            _renameat2 = False
    if _renameat2 is False:  # pragma: no cover
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # pragma: no cover - kernel or file system without RENAME_EXCHANGE
    raise OSError(err, os.strerror(err), str(b))


def commit(tmp: Path, target: Path) -> None:
    """Replace folder ``target`` (if any) by the complete folder ``tmp``, its sibling.

    On Linux one ``renameat2(RENAME_EXCHANGE)`` swaps them, so ``target`` always names a
    complete folder, and the old one (now at ``tmp``) is deleted. Elsewhere, or on a file
    system without the exchange, the old folder is renamed away and ``tmp`` renamed into
    place: two renames, with a moment in between when ``target`` does not exist.

    Raises
    ------
    OSError
        A rename failed (``target`` is a mount point, permissions...); ``tmp`` is left.
    """
    if not target.exists():
        try:
            os.rename(tmp, target)  # nothing to replace
            fsync(target.parent)
            return
        except OSError as exc:  # another writer made it meanwhile: replace theirs
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    if exchange(tmp, target):
        fsync(target.parent)
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old model
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.time_ns()}")
    os.rename(target, old)
    os.rename(tmp, target)
    fsync(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def remove_stale_siblings(target: Path) -> None:
    """Delete ``.<name>.tmp-<pid>-*`` / ``.<name>.old-<pid>-*`` folders of dead writers."""
    for prefix in (f".{target.name}.tmp-", f".{target.name}.old-"):
        for sibling in target.parent.glob(f"{prefix}*"):
            pid = sibling.name[len(prefix):].partition("-")[0]
            if pid.isdigit() and not _alive(int(pid)) and sibling.is_dir():
                logger.info("removing %s, left by writer %s that stopped", sibling, pid)
                shutil.rmtree(sibling, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


class FolderReader:
    """Read the files of one folder through a handle on the folder itself (POSIX), so that a
    :func:`commit` swapping the folder meanwhile cannot mix files of two versions; by path
    where handles on folders are not available.

    A commit swaps the old folder out before it deletes its files, so when ``path`` still
    names the folder held once everything is read (:meth:`still_current`), no file of it
    went missing meanwhile; otherwise the reader should start again on the new folder.

    Raises
    ------
    OSError
        The folder cannot be opened.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.identity: tuple[int, int] = (0, 0)
        if os.open in os.supports_dir_fd and hasattr(os, "O_DIRECTORY"):
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            st = os.fstat(self.fd)
            self.identity = (st.st_dev, st.st_ino)

    def __enter__(self) -> FolderReader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def still_current(self) -> bool:
        """True if ``path`` still names the folder held (always True without a handle)."""
        if self.fd is None:
            return True
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.identity

    def open(self, name: str) -> IO[bytes] | None:
        """Open the file ``name`` of the folder for reading (binary); None if it is absent.

        Raises
        ------
        OSError
            Any failure other than the file being absent.
        """
        try:
            if self.fd is None:
                return open(self.path / name, "rb")
            return os.fdopen(os.open(name, os.O_RDONLY, dir_fd=self.fd), "rb")
        except FileNotFoundError:
            return None
