"""``s3://`` URIs of this server's S3 as the local files behind them.

Jobs never go through HTTP for their data: ``s3://bucket/key`` is the file
``FMKIT_HOME/s3/bucket/key``, so a channel becomes an explicit file list (what SageMaker
would have downloaded at job start: every object under an ``S3Prefix``, or the keys a
``ManifestFile`` lists), an output path becomes a folder, and a local path under the store
maps back to its ``s3://`` URI for Describe answers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fmkit.sagemaker_api.objects import ObjectStore, check_bucket_name, check_key
from fmkit.sagemaker_api.protocol import ApiError


class DataUnavailable(Exception):
    """An input the job needs is missing; the job fails with this SageMaker-like reason."""


def split(uri: str) -> tuple[str, str]:
    """Return ``(bucket, key or prefix)`` of an ``s3://`` URI (or ``https://`` S3 URL)."""
    if uri.startswith("s3://"):
        rest = uri[len("s3://"):]
    elif uri.startswith("https://"):
        host, _, rest = uri[len("https://"):].partition("/")
        if not host.startswith("s3"):
            rest = f"{host.split('.', 1)[0]}/{rest}"
    else:
        raise ApiError("ValidationException", f"Expected an s3:// URI; got {uri!r}.")
    bucket, _, key = rest.partition("/")
    try:
        check_bucket_name(bucket)
    except ApiError:
        raise ApiError("ValidationException", f"{uri}: {bucket!r} is not a valid S3 bucket "
                       "name.") from None
    return bucket, key


def object_file(store: ObjectStore, uri: str) -> Path:
    """Return the file of the object ``uri`` (which may not exist yet)."""
    bucket, key = split(uri)
    try:
        check_key(key.rstrip("/") or "x")
    except ApiError as exc:
        raise ApiError("ValidationException", f"{uri}: {exc.message}") from None
    path = store.root / bucket / key.rstrip("/")
    return path


def folder(store: ObjectStore, uri: str) -> Path:
    """Return the folder an output prefix ``uri`` stands for (a key prefix ending in '/')."""
    bucket, key = split(uri)
    key = key.strip("/")
    if key:
        try:
            check_key(key)
        except ApiError as exc:
            raise ApiError("ValidationException", f"{uri}: {exc.message}") from None
    return store.root / bucket / key if key else store.root / bucket


def to_uri(store: ObjectStore, path: str | os.PathLike[str] | None) -> str | None:
    """Return ``s3://bucket/key`` for a path inside the store, else the path as given."""
    if path is None:
        return None
    text = os.fspath(path)
    if text.startswith("s3://"):
        return text
    root = str(store.root.resolve())
    try:
        full = str(Path(text).resolve())
    except OSError:
        return text
    if full.startswith(root + os.sep):
        return "s3://" + full[len(root) + 1:].replace(os.sep, "/")
    return text


def _no_objects(uri: str, region: str, role: str | None) -> DataUnavailable:
    bucket = uri[len("s3://"):].split("/", 1)[0] if uri.startswith("s3://") else uri
    return DataUnavailable(
        f'ClientError: Data download failed:No S3 objects found under S3 URL "{uri}" given '
        f"in input data source. Please ensure that the bucket exists in the selected region "
        f"({region}), that objects exist under that S3 prefix, and that the role "
        f'"{role or "-"}" has "s3:ListBucket" permissions on bucket "{bucket}".')


def prefix_files(store: ObjectStore, uri: str, *, region: str, role: str | None) -> list[str]:
    """Return the files of every object whose key starts with the prefix of ``uri``."""
    bucket, prefix = split(uri)
    if not store.bucket_exists(bucket):
        raise _no_objects(uri, region, role)
    files = [str(store.root / bucket / k) for k in store.keys(bucket, prefix)]
    if not files:
        raise _no_objects(uri, region, role)
    return files


def manifest_files(store: ObjectStore, uri: str, *, region: str, role: str | None
                   ) -> list[str]:
    """Return the files a SageMaker manifest lists: ``[{"prefix": "s3://..."}, "key", ...]``."""
    path = object_file(store, uri)
    if not path.is_file():
        raise DataUnavailable(f"ClientError: Data download failed:Could not download the "
                              f'manifest file "{uri}": the object does not exist.')
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataUnavailable(f'ClientError: Data download failed:The manifest file "{uri}" '
                              f"is not valid JSON: {exc}.") from None
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict) \
            or "prefix" not in entries[0]:
        raise DataUnavailable(f'ClientError: Data download failed:The manifest file "{uri}" '
                              'must be a JSON list starting with {"prefix": "s3://..."}.')
    prefix = str(entries[0]["prefix"])
    files = []
    for entry in entries[1:]:
        target = prefix + str(entry) if prefix.endswith("/") or not prefix else \
            f"{prefix}/{entry}"
        p = object_file(store, target)
        if not p.is_file():
            raise DataUnavailable(f"ClientError: Data download failed:The manifest file "
                                  f'"{uri}" lists "{target}", which does not exist.')
        files.append(str(p))
    if not files:
        raise DataUnavailable(f'ClientError: Data download failed:The manifest file "{uri}" '
                              "lists no objects.")
    return files
