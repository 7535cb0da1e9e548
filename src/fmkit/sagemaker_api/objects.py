"""S3 objects as plain files: ``<root>/<bucket>/<key>``, with their metadata beside.

``root`` is ``FMKIT_HOME/s3``. A bucket is a folder, an object a file at its key's path, so
fmkit's training and serving read objects directly and files dropped into a bucket folder
are objects too. Metadata (ETag, content type, ``x-amz-meta-*``, checksums) sits in the
SQLite file ``<root>/.objects.db``; a file without a row, or changed since, gets its ETag
from its bytes. Uploads go to ``<root>/.tmp`` and are renamed into place, so an object is
never seen half-written, and everything survives a restart. Bucket names cannot start with
``.``, so these folders never clash with a bucket.

What the filesystem cannot hold is refused with a clear error: keys with empty, ``.`` or
``..`` segments (they could escape the bucket), keys ending in ``/``, and a key that is
both an object and a "folder" of other keys (``a`` and ``a/b``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from fmkit.sagemaker_api.protocol import ApiError

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    etag TEXT NOT NULL, content_type TEXT, metadata TEXT NOT NULL DEFAULT '{}',
    checksums TEXT NOT NULL DEFAULT '{}', PRIMARY KEY (bucket, key));
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL,
    content_type TEXT, metadata TEXT NOT NULL DEFAULT '{}', initiated REAL NOT NULL);
"""


@dataclass(frozen=True)
class ObjectInfo:
    """One object: its key, size, ETag (quoted), times and metadata."""

    bucket: str
    key: str
    path: Path
    size: int
    etag: str
    last_modified: float
    content_type: str = "binary/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)


def no_such_bucket(bucket: str) -> ApiError:
    return ApiError("NoSuchBucket", "The specified bucket does not exist", 404,
                    BucketName=bucket)


def no_such_key(key: str) -> ApiError:
    return ApiError("NoSuchKey", "The specified key does not exist.", 404, Key=key)


def check_bucket_name(bucket: str) -> str:
    """Return ``bucket`` if it follows S3's naming rules, else raise InvalidBucketName."""
    if not _BUCKET.match(bucket) or ".." in bucket or _IP.match(bucket):
        raise ApiError("InvalidBucketName", f"The specified bucket is not valid: {bucket!r} "
                       "(3-63 lower-case letters, digits, '.' and '-').", 400,
                       BucketName=bucket)
    return bucket


def check_key(key: str) -> str:
    """Return ``key`` if it maps to a file inside its bucket folder, else raise."""
    if not key:
        raise ApiError("InvalidArgument", "The object key must not be empty.")
    if len(key.encode()) > 1024:
        raise ApiError("KeyTooLongError", "Your key is too long (at most 1024 bytes).")
    if "\x00" in key or "\\" in key:
        raise ApiError("InvalidArgument", f"Object key {key!r} holds a NUL or backslash, which "
                       "this local S3 stores as files and cannot hold.")
    if key.endswith("/"):
        raise ApiError("InvalidArgument", f"Object key {key!r} ends with '/': folder markers "
                       "are not stored by this local S3 (folders exist through their keys).")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise ApiError("InvalidArgument", f"Object key {key!r} has an empty, '.' or '..' "
                           "segment; this local S3 stores keys as file paths and refuses them.")
        if len(part.encode()) > 255:
            raise ApiError("KeyTooLongError", f"A segment of key {key!r} is longer than 255 "
                           "bytes, the file-name limit of the local filesystem.")
    return key


def _md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return f'"{digest.hexdigest()}"'


class ObjectStore:
    """Buckets and objects under ``root``; safe to share between threads."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.tmp = self.root / ".tmp"
        self.parts = self.root / ".uploads"
        for folder in (self.root, self.tmp, self.parts):
            folder.mkdir(parents=True, exist_ok=True)
        self._db_path = self.root / ".objects.db"
        self._local = threading.local()
        with self._conn() as conn:
            conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        """Return this thread's connection (autocommit; ``with`` is then a no-op scope)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._db_path, timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    # ------------------------------------------------------------------ buckets
    def bucket_dir(self, bucket: str) -> Path:
        return self.root / check_bucket_name(bucket)

    def bucket_exists(self, bucket: str) -> bool:
        return _BUCKET.match(bucket) is not None and (self.root / bucket).is_dir()

    def require_bucket(self, bucket: str) -> Path:
        folder = self.bucket_dir(bucket)
        if not folder.is_dir():
            raise no_such_bucket(bucket)
        return folder

    def list_buckets(self) -> list[tuple[str, float]]:
        """Return ``(name, creation time)`` of every bucket, by name."""
        out = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.is_dir() and _BUCKET.match(entry.name):
                out.append((entry.name, entry.stat().st_ctime))
        return out

    def create_bucket(self, bucket: str) -> bool:
        """Create ``bucket``; return False if it already existed."""
        folder = self.bucket_dir(bucket)
        if folder.is_dir():
            return False
        folder.mkdir()
        return True

    def delete_bucket(self, bucket: str) -> None:
        folder = self.require_bucket(bucket)
        if any(True for _ in self._walk(folder)):
            raise ApiError("BucketNotEmpty", "The bucket you tried to delete is not empty",
                           409, BucketName=bucket)
        shutil.rmtree(folder)
        with self._conn() as conn:
            conn.execute("DELETE FROM objects WHERE bucket=?", (bucket,))

    # ------------------------------------------------------------------ objects
    def object_path(self, bucket: str, key: str) -> Path:
        """Return the file of ``key``, checked to lie inside the bucket folder."""
        folder = self.require_bucket(bucket)
        path = folder / check_key(key)
        real_folder = os.path.realpath(folder)
        if not os.path.realpath(path).startswith(real_folder + os.sep):
            raise ApiError("InvalidArgument", f"Object key {key!r} leads outside its bucket.")
        return path

    def head(self, bucket: str, key: str) -> ObjectInfo:
        """Return an object's information, or raise NoSuchKey."""
        path = self.object_path(bucket, key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise no_such_key(key) from None
        if not path.is_file():
            raise no_such_key(key)
        return self._info(bucket, key, path, st)

    def _info(self, bucket: str, key: str, path: Path, st: os.stat_result) -> ObjectInfo:
        with self._conn() as conn:
            row = conn.execute("SELECT * FROM objects WHERE bucket=? AND key=?",
                               (bucket, key)).fetchone()
        if row is not None and row["size"] == st.st_size and row["mtime_ns"] == st.st_mtime_ns:
            return ObjectInfo(bucket, key, path, st.st_size, row["etag"], st.st_mtime,
                              row["content_type"] or "binary/octet-stream",
                              json.loads(row["metadata"]), json.loads(row["checksums"]))
        # a file written by fmkit or by hand: describe it from its bytes, and remember that
        etag = _md5_file(path)
        with self._conn() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO objects (bucket, key, size, mtime_ns, etag) "
                "VALUES (?, ?, ?, ?, ?)", (bucket, key, st.st_size, st.st_mtime_ns, etag))
        return ObjectInfo(bucket, key, path, st.st_size, etag, st.st_mtime)

    def new_temp(self) -> tuple[BinaryIO, Path]:
        """Open a temporary file for an upload; :meth:`commit` moves it into place."""
        fd, name = tempfile.mkstemp(dir=self.tmp, suffix=".part")
        return os.fdopen(fd, "wb"), Path(name)

    def commit(self, bucket: str, key: str, temp: Path, *, etag: str,
               content_type: str | None = None, metadata: dict[str, str] | None = None,
               checksums: dict[str, str] | None = None) -> ObjectInfo:
        """Rename the finished upload ``temp`` to ``key`` and record its metadata."""
        path = self.object_path(bucket, key)
        try:
            self._make_parents(path, key)
            if path.is_dir():
                raise ApiError("InvalidArgument", f"Object key {key!r} is also the folder of "
                               "other keys here; this local S3 stores keys as file paths and "
                               "cannot hold both.")
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        st = path.stat()
        with self._conn() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO objects (bucket, key, size, mtime_ns, etag, "
                "content_type, metadata, checksums) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (bucket, key, st.st_size, st.st_mtime_ns, etag, content_type,
                 json.dumps(metadata or {}), json.dumps(checksums or {})))
        return ObjectInfo(bucket, key, path, st.st_size, etag, st.st_mtime,
                          content_type or "binary/octet-stream", dict(metadata or {}),
                          dict(checksums or {}))

    def _make_parents(self, path: Path, key: str) -> None:
        parent = path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ApiError("InvalidArgument", f"A prefix of key {key!r} is itself an "
                           "object; this local S3 stores keys as file paths and cannot hold "
                           "both.") from None

    def copy(self, src_bucket: str, src_key: str, bucket: str, key: str, *,
             content_type: str | None = None, metadata: dict[str, str] | None = None,
             replace_metadata: bool = False) -> ObjectInfo:
        source = self.head(src_bucket, src_key)
        f, temp = self.new_temp()
        with f, open(source.path, "rb") as src:
            shutil.copyfileobj(src, f, 1 << 20)
        if not replace_metadata:
            content_type, metadata = source.content_type, source.metadata
        return self.commit(bucket, key, temp, etag=source.etag, content_type=content_type,
                           metadata=metadata, checksums=source.checksums)

    def delete(self, bucket: str, key: str) -> None:
        """Delete ``key`` (no error if absent, as S3) and now-empty parent folders."""
        path = self.object_path(bucket, key)
        if path.is_file():
            path.unlink()
        with self._conn() as conn:
            conn.execute("DELETE FROM objects WHERE bucket=? AND key=?", (bucket, key))
        folder = self.root / bucket
        parent = path.parent
        while parent != folder:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def _walk(self, folder: Path, prefix: str = "") -> Iterator[str]:
        """Yield the keys under ``folder`` (unsorted) whose path starts like ``prefix``."""
        head, _, _ = prefix.rpartition("/")
        start = folder / head if head else folder
        if not start.is_dir():
            return
        base = len(str(folder)) + 1
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                key = os.path.join(dirpath, name)[base:].replace(os.sep, "/")
                if key.startswith(prefix):
                    yield key

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Return every key of ``bucket`` starting with ``prefix``, sorted as S3 sorts them."""
        folder = self.require_bucket(bucket)
        return sorted(self._walk(folder, prefix), key=lambda k: k.encode())

    def list(self, bucket: str, *, prefix: str = "", delimiter: str = "",
             start_after: str = "", max_keys: int = 1000
             ) -> tuple[list[ObjectInfo], list[str], bool, str]:
        """List like ListObjectsV2: ``(objects, common prefixes, truncated, last name)``."""
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        last = ""
        truncated = False
        for key in self.keys(bucket, prefix):
            if start_after and key.encode() <= start_after.encode():
                continue
            entry = key
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    entry = key[:cut + len(delimiter)]
                    if prefixes and prefixes[-1] == entry:
                        continue
                    if start_after and entry.encode() <= start_after.encode():
                        continue
            if len(objects) + len(prefixes) >= max_keys:
                truncated = True
                break
            if entry != key:
                prefixes.append(entry)
                last = entry
            else:
                try:
                    objects.append(self.head(bucket, key))
                except ApiError:  # removed meanwhile
                    continue
                last = key
        return objects, prefixes, truncated, last

    # ------------------------------------------------------------------ multipart
    def create_upload(self, bucket: str, key: str, content_type: str | None,
                      metadata: dict[str, str]) -> str:
        self.object_path(bucket, key)
        upload_id = uuid.uuid4().hex
        (self.parts / upload_id).mkdir()
        with self._conn() as conn:
            conn.execute("INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?)",
                         (upload_id, bucket, key, content_type, json.dumps(metadata),
                          time.time()))
        return upload_id

    def upload(self, upload_id: str, bucket: str, key: str) -> sqlite3.Row:
        with self._conn() as conn:
            row = conn.execute("SELECT * FROM uploads WHERE upload_id=?",
                               (upload_id,)).fetchone()
        if row is None or row["bucket"] != bucket or row["key"] != key:
            raise ApiError("NoSuchUpload", "The specified upload does not exist. The upload "
                           "ID may be invalid, or the upload may have been aborted or "
                           "completed.", 404, UploadId=upload_id)
        return row

    def part_path(self, upload_id: str, number: int) -> Path:
        return self.parts / upload_id / f"{number:05d}"

    def list_parts(self, upload_id: str) -> list[tuple[int, int, str, float]]:
        """Return ``(number, size, etag, mtime)`` of the uploaded parts."""
        out = []
        for entry in sorted(os.scandir(self.parts / upload_id), key=lambda e: e.name):
            if entry.name.endswith(".etag"):
                continue
            etag_file = Path(entry.path + ".etag")
            etag = etag_file.read_text() if etag_file.is_file() else ""
            st = entry.stat()
            out.append((int(entry.name), st.st_size, etag, st.st_mtime))
        return out

    def list_uploads(self, bucket: str) -> list[sqlite3.Row]:
        with self._conn() as conn:
            return list(conn.execute("SELECT * FROM uploads WHERE bucket=? ORDER BY key, "
                                     "initiated", (bucket,)))

    def finish_upload(self, upload_id: str) -> None:
        shutil.rmtree(self.parts / upload_id, ignore_errors=True)
        with self._conn() as conn:
            conn.execute("DELETE FROM uploads WHERE upload_id=?", (upload_id,))

