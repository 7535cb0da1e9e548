"""S3 REST-XML, path-style (``/bucket/key``), over
:class:`~fmkit.sagemaker_api.objects.ObjectStore`.

Buckets: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation.
Objects: PutObject, GetObject (one ``Range``, ``If-Match``/``If-None-Match``), HeadObject,
CopyObject, DeleteObject, DeleteObjects, ListObjectsV2 (and v1) with prefix, delimiter,
continuation and ``encoding-type=url``. Multipart: Create, UploadPart, UploadPartCopy,
Complete, Abort, ListParts, ListMultipartUploads.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from fmkit.sagemaker_api.bodies import read_small, receive_to_file
from fmkit.sagemaker_api.objects import ObjectInfo, ObjectStore
from fmkit.sagemaker_api.protocol import ACCOUNT_ID, ApiError

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_XML_BYTES = 2 * 1024 * 1024
MIN_PART_BYTES = 5 * 1024 * 1024
_BUCKET_SUBRESOURCES_IGNORED = ("acl", "versioning", "tagging", "cors", "policy", "lifecycle",
                                "encryption", "publicAccessBlock", "ownershipControls")


def _x(text: Any) -> str:
    from xml.sax.saxutils import escape

    return escape(str(text))


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def _http_date(t: float) -> str:
    return email.utils.formatdate(t, usegmt=True)


def _xml(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response('<?xml version="1.0" encoding="UTF-8"?>\n' + body, status_code=status,
                    media_type="application/xml", headers=headers)


def _user_metadata(request: Request) -> dict[str, str]:
    return {k[len("x-amz-meta-"):]: v for k, v in request.headers.items()
            if k.startswith("x-amz-meta-")}


def _object_headers(info: ObjectInfo) -> dict[str, str]:
    headers = {"ETag": info.etag, "Last-Modified": _http_date(info.last_modified),
               "Content-Type": info.content_type, "Accept-Ranges": "bytes"}
    headers.update({f"x-amz-meta-{k}": v for k, v in info.metadata.items()})
    return headers


class S3Api:
    """The S3 handlers of the one server; ``handle`` answers one request."""

    def __init__(self, store: ObjectStore, *, max_object_bytes: int) -> None:
        self.store = store
        self.max_object_bytes = max_object_bytes

    async def handle(self, request: Request, region: str) -> Response:
        raw = request.scope.get("raw_path")
        # the raw path: a key may hold '%' sequences that must be decoded exactly once
        path = raw.decode("latin-1") if raw else quote(request.url.path)
        bucket, _, key = path.lstrip("/").partition("/")
        bucket = unquote(bucket)
        key = unquote(key, encoding="utf-8", errors="strict") if key else ""
        method = request.method
        q = request.query_params
        if not bucket:
            if method == "GET":
                return await run_in_threadpool(self.list_buckets)
            raise ApiError("MethodNotAllowed", f"{method} / is not an S3 operation.", 405)
        if not key:
            return await self._bucket(request, method, bucket, q, region)
        return await self._object(request, method, bucket, key, q)

    # ------------------------------------------------------------------ buckets
    def list_buckets(self) -> Response:
        items = "".join(f"<Bucket><Name>{_x(n)}</Name><CreationDate>{_iso(t)}</CreationDate>"
                        "</Bucket>" for n, t in self.store.list_buckets())
        return _xml(f'<ListAllMyBucketsResult xmlns="{NS}"><Owner><ID>{ACCOUNT_ID}</ID>'
                    f"<DisplayName>local</DisplayName></Owner><Buckets>{items}</Buckets>"
                    "</ListAllMyBucketsResult>")

    async def _bucket(self, request: Request, method: str, bucket: str, q: Any,
                      region: str) -> Response:
        store = self.store
        if method == "PUT" and not q:
            await read_small(request, MAX_XML_BYTES)  # CreateBucketConfiguration: ignored
            created = await run_in_threadpool(store.create_bucket, bucket)
            if not created and region != "us-east-1":
                raise ApiError("BucketAlreadyOwnedByYou", "Your previous request to create the "
                               "named bucket succeeded and you already own it.", 409,
                               BucketName=bucket)
            return Response(status_code=200, headers={"Location": f"/{bucket}"})
        if method == "HEAD":
            store.require_bucket(bucket)
            return Response(status_code=200, headers={"x-amz-bucket-region": region})
        if method == "DELETE" and not q:
            await run_in_threadpool(store.delete_bucket, bucket)
            return Response(status_code=204)
        if method == "POST" and "delete" in q:
            return await self._delete_objects(request, bucket)
        if method == "GET":
            store.require_bucket(bucket)
            if "location" in q:
                where = "" if region == "us-east-1" else _x(region)
                return _xml(f'<LocationConstraint xmlns="{NS}">{where}</LocationConstraint>')
            if "uploads" in q:
                return await run_in_threadpool(self._list_uploads, bucket)
            if any(s in q for s in _BUCKET_SUBRESOURCES_IGNORED):
                if "versioning" in q:
                    return _xml(f'<VersioningConfiguration xmlns="{NS}"/>')
                raise ApiError("NotImplemented", "This bucket setting is not kept by the "
                               "local S3.", 501)
            return await run_in_threadpool(self._list_objects, bucket, dict(q))
        raise ApiError("NotImplemented", f"{method} on a bucket with "
                       f"{sorted(q.keys()) or 'no'} parameters is not supported by the local "
                       "S3.", 501)

    def _list_objects(self, bucket: str, q: dict[str, str]) -> Response:
        v2 = q.get("list-type") == "2"
        prefix = q.get("prefix", "")
        delimiter = q.get("delimiter", "")
        url = q.get("encoding-type") == "url"
        try:
            max_keys = min(int(q.get("max-keys", "1000")), 1000)
        except ValueError:
            raise ApiError("InvalidArgument", "max-keys must be an integer.") from None
        if max_keys < 0:
            raise ApiError("InvalidArgument", "max-keys must be >= 0.")
        token = q.get("continuation-token")
        if v2:
            start = q.get("start-after", "")
            if token:
                try:
                    start = base64.urlsafe_b64decode(token.encode()).decode()
                except (ValueError, UnicodeDecodeError):
                    raise ApiError("InvalidArgument", "The continuation token provided is "
                                   "incorrect.") from None
        else:
            start = q.get("marker", "")
        objects, prefixes, truncated, last = self.store.list(
            bucket, prefix=prefix, delimiter=delimiter, start_after=start, max_keys=max_keys)

        def enc(text: str) -> str:
            return _x(quote(text, safe="/~") if url else text)

        parts = [f'<ListBucketResult xmlns="{NS}"><Name>{_x(bucket)}</Name>'
                 f"<Prefix>{enc(prefix)}</Prefix><MaxKeys>{max_keys}</MaxKeys>"]
        if delimiter:
            parts.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
        if url:
            parts.append("<EncodingType>url</EncodingType>")
        parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if v2:
            parts.append(f"<KeyCount>{len(objects) + len(prefixes)}</KeyCount>")
            if token:
                parts.append(f"<ContinuationToken>{_x(token)}</ContinuationToken>")
            if q.get("start-after"):
                parts.append(f"<StartAfter>{enc(q['start-after'])}</StartAfter>")
            if truncated:
                nxt = base64.urlsafe_b64encode(last.encode()).decode()
                parts.append(f"<NextContinuationToken>{nxt}</NextContinuationToken>")
        else:
            parts.append(f"<Marker>{enc(start)}</Marker>")
            if truncated and delimiter:
                parts.append(f"<NextMarker>{enc(last)}</NextMarker>")
        for o in objects:
            parts.append(f"<Contents><Key>{enc(o.key)}</Key><LastModified>"
                         f"{_iso(o.last_modified)}</LastModified><ETag>{_x(o.etag)}</ETag>"
                         f"<Size>{o.size}</Size><StorageClass>STANDARD</StorageClass>"
                         "</Contents>")
        for p in prefixes:
            parts.append(f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>")
        parts.append("</ListBucketResult>")
        return _xml("".join(parts))

    async def _delete_objects(self, request: Request, bucket: str) -> Response:
        body = await read_small(request, MAX_XML_BYTES)
        root = _parse_xml(body)
        quiet = (_find_text(root, "Quiet") or "").lower() == "true"
        keys = [_find_text(o, "Key") or "" for o in _children(root, "Object")]
        if len(keys) > 1000:
            raise ApiError("MalformedXML", "DeleteObjects takes at most 1000 keys.")

        def run() -> Response:
            done, errors = [], []
            for key in keys:
                try:
                    self.store.delete(bucket, key)
                    done.append(key)
                except ApiError as exc:
                    errors.append((key, exc))
            out = [f'<DeleteResult xmlns="{NS}">']
            if not quiet:
                out += [f"<Deleted><Key>{_x(k)}</Key></Deleted>" for k in done]
            out += [f"<Error><Key>{_x(k)}</Key><Code>{_x(e.code)}</Code><Message>"
                    f"{_x(e.message)}</Message></Error>" for k, e in errors]
            out.append("</DeleteResult>")
            return _xml("".join(out))

        return await run_in_threadpool(run)

    def _list_uploads(self, bucket: str) -> Response:
        rows = self.store.list_uploads(bucket)
        items = "".join(f"<Upload><Key>{_x(r['key'])}</Key><UploadId>{r['upload_id']}"
                        f"</UploadId><Initiated>{_iso(r['initiated'])}</Initiated></Upload>"
                        for r in rows)
        return _xml(f'<ListMultipartUploadsResult xmlns="{NS}"><Bucket>{_x(bucket)}</Bucket>'
                    f"<IsTruncated>false</IsTruncated>{items}</ListMultipartUploadsResult>")

    # ------------------------------------------------------------------ objects
    async def _object(self, request: Request, method: str, bucket: str, key: str,
                      q: Any) -> Response:
        store = self.store
        if method == "PUT":
            if "uploadId" in q:
                return await self._upload_part(request, bucket, key, q)
            if request.headers.get("x-amz-copy-source"):
                return await self._copy(request, bucket, key)
            if "tagging" in q or "acl" in q:
                await read_small(request, MAX_XML_BYTES)
                return Response(status_code=200)
            return await self._put(request, bucket, key)
        if method in ("GET", "HEAD"):
            if "uploadId" in q:
                return await run_in_threadpool(self._list_parts, bucket, key, q["uploadId"])
            info = await run_in_threadpool(store.head, bucket, key)
            return self._get(request, info, head=method == "HEAD", q=q)
        if method == "DELETE":
            if "uploadId" in q:
                store.upload(q["uploadId"], bucket, key)
                await run_in_threadpool(store.finish_upload, q["uploadId"])
                return Response(status_code=204)
            await run_in_threadpool(store.delete, bucket, key)
            return Response(status_code=204)
        if method == "POST":
            if "uploads" in q:
                upload_id = await run_in_threadpool(
                    store.create_upload, bucket, key, request.headers.get("content-type"),
                    _user_metadata(request))
                return _xml(f'<InitiateMultipartUploadResult xmlns="{NS}"><Bucket>{_x(bucket)}'
                            f"</Bucket><Key>{_x(key)}</Key><UploadId>{upload_id}</UploadId>"
                            "</InitiateMultipartUploadResult>")
            if "uploadId" in q:
                return await self._complete(request, bucket, key, q["uploadId"])
        raise ApiError("NotImplemented", f"{method} on an object with "
                       f"{sorted(q.keys()) or 'no'} parameters is not supported by the local "
                       "S3.", 501)

    async def _put(self, request: Request, bucket: str, key: str) -> Response:
        self.store.object_path(bucket, key)  # validate before reading the body
        f, temp = self.store.new_temp()
        try:
            with f:
                got = await receive_to_file(request, f, limit=self.max_object_bytes)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        info = await run_in_threadpool(
            self.store.commit, bucket, key, temp, etag=f'"{got["md5"]}"',
            content_type=request.headers.get("content-type"),
            metadata=_user_metadata(request), checksums=got["checksums"])
        headers = {"ETag": info.etag}
        headers.update(got["checksums"])
        return Response(status_code=200, headers=headers)

    def _get(self, request: Request, info: ObjectInfo, *, head: bool, q: Any) -> Response:
        headers = _object_headers(info)
        if q.get("response-content-type"):
            headers["Content-Type"] = q["response-content-type"]
        if_match = request.headers.get("if-match")
        if if_match and if_match.strip() not in (info.etag, "*", info.etag.strip('"')):
            raise ApiError("PreconditionFailed", "At least one of the pre-conditions you "
                           "specified did not hold", 412, Condition="If-Match")
        if_none = request.headers.get("if-none-match")
        if if_none and if_none.strip() in (info.etag, "*", info.etag.strip('"')):
            return Response(status_code=304, headers={"ETag": info.etag})
        start, end = 0, info.size - 1
        status = 200
        rng = request.headers.get("range")
        if rng:
            start, end = _parse_range(rng, info.size)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
        length = max(0, end - start + 1)
        headers["Content-Length"] = str(length)
        if head:
            return Response(status_code=status, headers=headers)
        return StreamingResponse(_file_chunks(str(info.path), start, length),
                                 status_code=status, headers=headers)

    async def _copy(self, request: Request, bucket: str, key: str) -> Response:
        src_bucket, src_key = _copy_source(request.headers["x-amz-copy-source"])
        await read_small(request, MAX_XML_BYTES)
        replace = (request.headers.get("x-amz-metadata-directive") or "COPY").upper() \
            == "REPLACE"
        info = await run_in_threadpool(
            lambda: self.store.copy(src_bucket, src_key, bucket, key,
                                    content_type=request.headers.get("content-type"),
                                    metadata=_user_metadata(request),
                                    replace_metadata=replace))
        return _xml(f'<CopyObjectResult xmlns="{NS}"><LastModified>{_iso(info.last_modified)}'
                    f"</LastModified><ETag>{_x(info.etag)}</ETag></CopyObjectResult>")

    # ------------------------------------------------------------------ multipart
    async def _upload_part(self, request: Request, bucket: str, key: str, q: Any) -> Response:
        upload_id = q["uploadId"]
        self.store.upload(upload_id, bucket, key)
        try:
            number = int(q.get("partNumber", ""))
        except ValueError:
            number = 0
        if not 1 <= number <= 10000:
            raise ApiError("InvalidArgument", "Part number must be an integer between 1 and "
                           "10000, inclusive.")
        part = self.store.part_path(upload_id, number)
        source = request.headers.get("x-amz-copy-source")
        if source:
            src_bucket, src_key = _copy_source(source)
            info = await run_in_threadpool(self.store.head, src_bucket, src_key)
            start, end = 0, info.size - 1
            if request.headers.get("x-amz-copy-source-range"):
                start, end = _parse_range(request.headers["x-amz-copy-source-range"], info.size)

            def copy_range() -> str:
                digest = hashlib.md5()
                with open(info.path, "rb") as src, open(part, "wb") as dst:
                    src.seek(start)
                    left = end - start + 1
                    while left > 0:
                        chunk = src.read(min(left, 1 << 20))
                        if not chunk:
                            break
                        digest.update(chunk)
                        dst.write(chunk)
                        left -= len(chunk)
                return f'"{digest.hexdigest()}"'

            etag = await run_in_threadpool(copy_range)
            part.with_name(part.name + ".etag").write_text(etag)
            return _xml(f'<CopyPartResult xmlns="{NS}"><LastModified>{_iso(time.time())}'
                        f"</LastModified><ETag>{_x(etag)}</ETag></CopyPartResult>")
        with open(part, "wb") as f:
            got = await receive_to_file(request, f, limit=self.max_object_bytes)
        etag = f'"{got["md5"]}"'
        part.with_name(part.name + ".etag").write_text(etag)
        headers = {"ETag": etag}
        headers.update(got["checksums"])
        return Response(status_code=200, headers=headers)

    def _list_parts(self, bucket: str, key: str, upload_id: str) -> Response:
        self.store.upload(upload_id, bucket, key)
        items = "".join(f"<Part><PartNumber>{n}</PartNumber><LastModified>{_iso(t)}"
                        f"</LastModified><ETag>{_x(e)}</ETag><Size>{s}</Size></Part>"
                        for n, s, e, t in self.store.list_parts(upload_id))
        return _xml(f'<ListPartsResult xmlns="{NS}"><Bucket>{_x(bucket)}</Bucket><Key>'
                    f"{_x(key)}</Key><UploadId>{upload_id}</UploadId><IsTruncated>false"
                    f"</IsTruncated>{items}</ListPartsResult>")

    async def _complete(self, request: Request, bucket: str, key: str,
                        upload_id: str) -> Response:
        upload = self.store.upload(upload_id, bucket, key)
        root = _parse_xml(await read_small(request, MAX_XML_BYTES))
        wanted = []
        for part in _children(root, "Part"):
            try:
                wanted.append((int(_find_text(part, "PartNumber") or ""),
                               (_find_text(part, "ETag") or "").strip()))
            except ValueError:
                raise ApiError("MalformedXML", "A Part has no integer PartNumber.") from None
        if not wanted:
            raise ApiError("MalformedXML", "CompleteMultipartUpload lists no parts.")
        if [n for n, _ in wanted] != sorted({n for n, _ in wanted}):
            raise ApiError("InvalidPartOrder", "The list of parts was not in ascending order. "
                           "The parts list must be specified in order by part number.")

        def assemble() -> tuple[ObjectInfo, str]:
            have = {n: (s, e) for n, s, e, _ in self.store.list_parts(upload_id)}
            digests = b""
            for i, (n, etag) in enumerate(wanted):
                if n not in have or have[n][1].strip('"') != etag.strip('"'):
                    raise ApiError("InvalidPart", "One or more of the specified parts could "
                                   "not be found. The part might not have been uploaded, or "
                                   "the specified entity tag might not have matched the "
                                   "part's entity tag.", UploadId=upload_id, PartNumber=str(n))
                if i < len(wanted) - 1 and have[n][0] < MIN_PART_BYTES:
                    raise ApiError("EntityTooSmall", "Your proposed upload is smaller than the "
                                   "minimum allowed object size.", PartNumber=str(n))
                digests += bytes.fromhex(have[n][1].strip('"'))
            f, temp = self.store.new_temp()
            with f:
                for n, _ in wanted:
                    with open(self.store.part_path(upload_id, n), "rb") as src:
                        while chunk := src.read(1 << 20):
                            f.write(chunk)
            etag = f'"{hashlib.md5(digests).hexdigest()}-{len(wanted)}"'
            info = self.store.commit(bucket, key, temp, etag=etag,
                                     content_type=upload["content_type"],
                                     metadata=json.loads(upload["metadata"]))
            self.store.finish_upload(upload_id)
            return info, etag

        info, etag = await run_in_threadpool(assemble)
        return _xml(f'<CompleteMultipartUploadResult xmlns="{NS}"><Location>/{_x(bucket)}/'
                    f"{_x(quote(key))}</Location><Bucket>{_x(bucket)}</Bucket><Key>{_x(key)}"
                    f"</Key><ETag>{_x(etag)}</ETag></CompleteMultipartUploadResult>")


def _file_chunks(path: str, start: int, length: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        left = length
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


def _parse_range(text: str, size: int) -> tuple[int, int]:
    """Return the inclusive ``(start, end)`` of one ``bytes=`` range, or raise InvalidRange."""
    unit, _, spec = text.strip().partition("=")
    invalid = ApiError("InvalidRange", "The requested range is not satisfiable", 416,
                       RangeRequested=text, ActualObjectSize=str(size))
    if unit.strip() != "bytes" or "," in spec:
        raise invalid
    first, _, last = spec.strip().partition("-")
    try:
        if not first:
            n = int(last)
            if n <= 0:
                raise invalid
            return max(0, size - n), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        raise invalid from None
    if start >= size or start < 0 or end < start:
        raise invalid
    return start, min(end, size - 1)


def _copy_source(text: str) -> tuple[str, str]:
    source = unquote(text.split("?", 1)[0]).lstrip("/")
    bucket, _, key = source.partition("/")
    if not bucket or not key:
        raise ApiError("InvalidArgument", f"x-amz-copy-source must be 'bucket/key'; "
                       f"got {text!r}.")
    return bucket, key


def _parse_xml(body: bytes) -> ET.Element:
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        raise ApiError("MalformedXML", "The XML you provided was not well-formed or did not "
                       "validate against our published schema.") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(root: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in root if _local(c.tag) == name]


def _find_text(root: ET.Element, name: str) -> str | None:
    for c in root:
        if _local(c.tag) == name:
            return c.text
    return None

