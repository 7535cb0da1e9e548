"""The console talks to endpoints as any client does: HTTP to the URL in their record."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from fmkit.errors import FMError

MAX_ANSWER_BYTES = 2 * 1024 * 1024


class EndpointCallError(FMError):
    """The endpoint could not be reached or gave no answer."""


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def call(url: str, *, body: bytes | None = None, content_type: str | None = None,
         accept: str | None = None, timeout_s: float = 30.0) -> Answer:
    """Send a GET (``body`` None) or POST to ``url``; return the answer, errors included.

    Raises
    ------
    EndpointCallError
        The endpoint is not reachable (refused, timed out).
    """
    headers = {}
    if content_type:
        headers["Content-Type"] = content_type
    if accept:
        headers["Accept"] = accept
    req = urllib.request.Request(url, data=body, headers=headers,
                                 method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 (record URL)
            return Answer(resp.status, resp.headers.get("content-type", ""),
                          resp.read(MAX_ANSWER_BYTES))
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers.get("content-type", ""), exc.read(MAX_ANSWER_BYTES))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EndpointCallError(f"cannot reach {url}: {reason}.") from None


def post_json(url: str, doc: dict[str, Any], *, timeout_s: float = 30.0) -> Answer:
    return call(url, body=json.dumps(doc).encode(), content_type="application/json",
                accept="application/json", timeout_s=timeout_s)


def stats(url: str | None) -> dict[str, Any] | None:
    """The endpoint's ``GET /stats`` (requests served by the worker that answers), or None."""
    if not url:
        return None
    try:
        answer = call(f"{url}/stats", timeout_s=1.0)
    except EndpointCallError:
        return None
    doc = answer.json() if answer.status == 200 else None
    return doc if isinstance(doc, dict) else None
