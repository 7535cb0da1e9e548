"""Upload bodies as botocore sends them: plain, ``Expect: 100-continue`` (uvicorn answers it
when the body is first read), or ``aws-chunked`` with a trailing checksum; streamed to a file
with a size bound, while the MD5 (the ETag) and the announced checksum are computed.

aws-chunked framing (SigV4 streaming)::

    <hex size>[;chunk-signature=<sig>]\\r\\n<bytes>\\r\\n ... 0[;...]\\r\\n
    x-amz-checksum-crc32:<base64>\\r\\n\\r\\n
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Any, BinaryIO

from fmkit.sagemaker_api.protocol import ApiError

#: checksum headers botocore may send; the ones hashlib/zlib compute are verified
CHECKSUM_HEADERS = ("x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-sha1",
                    "x-amz-checksum-sha256", "x-amz-checksum-crc64nvme")


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def b64(self) -> str:
        return base64.b64encode(self.value.to_bytes(4, "big")).decode()


class _Hash:
    def __init__(self, name: str) -> None:
        self.h = hashlib.new(name)

    def update(self, data: bytes) -> None:
        self.h.update(data)

    def b64(self) -> str:
        return base64.b64encode(self.h.digest()).decode()


def _hasher(header: str) -> Any:
    if header == "x-amz-checksum-crc32":
        return _Crc32()
    if header == "x-amz-checksum-sha1":
        return _Hash("sha1")
    if header == "x-amz-checksum-sha256":
        return _Hash("sha256")
    return None  # crc32c / crc64nvme: stored as sent, not verified


class AwsChunkedDecoder:
    """Incremental decoder of an ``aws-chunked`` body; ``feed`` returns payload bytes."""

    def __init__(self) -> None:
        self._buf = b""
        self._remaining = 0      # payload bytes left in the current chunk
        self._need_crlf = False  # a chunk's data ended; its CRLF is next
        self._in_trailer = False
        self.done = False
        self.trailers: dict[str, str] = {}

    def feed(self, data: bytes) -> bytes:
        self._buf += data
        out = bytearray()
        while self._buf and not self.done:
            if self._in_trailer:
                if b"\r\n\r\n" in self._buf or self._buf == b"\r\n":
                    self._parse_trailers()
                break
            if self._remaining:
                take = self._buf[:self._remaining]
                out += take
                self._buf = self._buf[len(take):]
                self._remaining -= len(take)
                if not self._remaining:
                    self._need_crlf = True
                continue
            if self._need_crlf:
                if len(self._buf) < 2:
                    break
                if self._buf[:2] != b"\r\n":
                    raise ApiError("IncompleteBody", "aws-chunked body: a chunk is not "
                                   "followed by CRLF.")
                self._buf = self._buf[2:]
                self._need_crlf = False
                continue
            line_end = self._buf.find(b"\r\n")
            if line_end < 0:
                if len(self._buf) > 4096:
                    raise ApiError("IncompleteBody", "aws-chunked body: chunk header too long.")
                break
            header = self._buf[:line_end].split(b";", 1)[0].strip()
            try:
                size = int(header, 16)
            except ValueError:
                raise ApiError("IncompleteBody", f"aws-chunked body: bad chunk size "
                               f"{header[:20]!r}.") from None
            self._buf = self._buf[line_end + 2:]
            if size == 0:
                self._in_trailer = True
            else:
                self._remaining = size
        return bytes(out)

    def _parse_trailers(self) -> None:
        # the rest is "name:value\r\n"... "\r\n"
        self.done = True
        for line in self._buf.split(b"\r\n"):
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                self.trailers[name.strip().lower()] = value.strip()
        self._buf = b""

    def finish(self, rest: bytes) -> None:
        """Parse whatever is left once the body has ended."""
        if not self.done:
            self._buf += rest
            if not self._in_trailer:
                raise ApiError("IncompleteBody", "The aws-chunked body ended before its final "
                               "0-length chunk.")
            self._parse_trailers()


async def receive_to_file(request: Any, out: BinaryIO, *, limit: int) -> dict[str, Any]:
    """Stream ``request``'s body into ``out``; return size, MD5 hex and checksums.

    Raises
    ------
    ApiError
        EntityTooLarge over ``limit``; BadDigest when Content-MD5 or a checksum disagrees;
        IncompleteBody when a declared length or chunk is not met.
    """
    headers = request.headers
    chunked = "aws-chunked" in (headers.get("content-encoding") or "").lower() or \
        (headers.get("x-amz-content-sha256") or "").startswith("STREAMING-")
    decoder = AwsChunkedDecoder() if chunked else None
    md5 = hashlib.md5()
    hashers = {h: _hasher(h) for h in CHECKSUM_HEADERS
               if h in headers or h in (headers.get("x-amz-trailer") or "").lower()}
    size = 0
    async for chunk in request.stream():
        data = decoder.feed(chunk) if decoder is not None else chunk
        if not data:
            continue
        size += len(data)
        if size > limit:
            raise ApiError("EntityTooLarge", f"Your proposed upload exceeds the maximum "
                           f"allowed size of this server ({limit} bytes).")
        md5.update(data)
        for h in hashers.values():
            if h is not None:
                h.update(data)
        out.write(data)
    if decoder is not None:
        decoder.finish(b"")
        declared = headers.get("x-amz-decoded-content-length")
        if declared is not None and declared.isdigit() and int(declared) != size:
            raise ApiError("IncompleteBody", f"The body holds {size} bytes; "
                           f"x-amz-decoded-content-length says {declared}.")
    sent: dict[str, str] = {}
    for name in hashers:
        value = headers.get(name) or (decoder.trailers.get(name) if decoder else None)
        if value:
            sent[name] = value
    content_md5 = headers.get("content-md5")
    if content_md5 and base64.b64encode(md5.digest()).decode() != content_md5.strip():
        raise ApiError("BadDigest", "The Content-MD5 you specified did not match what we "
                       "received.")
    for name, value in sent.items():
        h = hashers.get(name)
        if h is not None and h.b64() != value:
            algo = name.rsplit("-", 1)[-1].upper()
            raise ApiError("BadDigest", f"The {algo} you specified did not match the "
                           "calculated checksum.")
    return {"size": size, "md5": md5.hexdigest(), "md5_digest": md5.digest(),
            "checksums": sent}


async def read_small(request: Any, limit: int) -> bytes:
    """Read a small body (XML or JSON requests) into memory, decoding aws-chunked."""
    import io

    buf = io.BytesIO()
    await receive_to_file(request, buf, limit=limit)
    return buf.getvalue()
