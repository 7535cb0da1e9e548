"""The console's safety checks: CSRF tokens, form bodies, and paths that stay inside a root.

CSRF uses a signed double-submit cookie: the first page sets ``fmkit_csrf`` (random, signed
with the app's secret, ``SameSite=Strict``, ``HttpOnly``); every page carries the same token in
a ``<meta name="csrf-token">`` and in its forms; a POST must send it back as the form field
``csrf_token`` or the ``X-CSRF-Token`` header, equal to the cookie and correctly signed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import parse_qsl

from fmkit.errors import FMError

COOKIE = "fmkit_csrf"
FIELD = "csrf_token"
HEADER = "x-csrf-token"
MAX_FORM_BYTES = 1024 * 1024


class CSRFError(FMError):
    """A POST without a valid CSRF token (HTTP 403)."""


class PathError(FMError):
    """A requested file lies outside the folders the console may serve (HTTP 404)."""


class FormTooLargeError(FMError):
    """A form body over :data:`MAX_FORM_BYTES` (HTTP 413)."""


def new_token(secret: bytes) -> str:
    """Return a fresh token ``<random>.<hmac>``."""
    raw = secrets.token_urlsafe(24)
    return f"{raw}.{_sign(secret, raw)}"


def _sign(secret: bytes, raw: str) -> str:
    return hmac.new(secret, raw.encode(), hashlib.sha256).hexdigest()[:32]


def valid_token(secret: bytes, token: str | None) -> bool:
    """Whether ``token`` was made by :func:`new_token` with ``secret``."""
    if not token or token.count(".") != 1:
        return False
    raw, sig = token.split(".")
    return hmac.compare_digest(sig, _sign(secret, raw))


def check_csrf(secret: bytes, cookie: str | None, sent: str | None) -> None:
    """Raise CSRFError unless ``sent`` equals ``cookie`` and both are validly signed."""
    if not valid_token(secret, cookie):
        raise CSRFError("missing or invalid CSRF cookie; reload the page and try again.")
    if not sent or not hmac.compare_digest(cookie or "", sent):
        raise CSRFError("missing or wrong CSRF token; reload the page and try again.")


def parse_form(body: bytes, content_type: str | None) -> dict[str, str]:
    """Parse an ``application/x-www-form-urlencoded`` body (last value of a repeated key wins).

    Raises
    ------
    FormTooLargeError
        The body is over :data:`MAX_FORM_BYTES`.
    FMError
        Another content type (the console's forms are all urlencoded).
    """
    if len(body) > MAX_FORM_BYTES:
        raise FormTooLargeError(f"form body is {len(body)} bytes; the limit is "
                                f"{MAX_FORM_BYTES}.")
    kind = (content_type or "").split(";")[0].strip().lower()
    if body and kind not in ("application/x-www-form-urlencoded", ""):
        raise FMError(f"forms must be application/x-www-form-urlencoded; got {kind!r}.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FMError("the form body is not UTF-8.") from None
    return {k: v for k, v in parse_qsl(text, keep_blank_values=True)}


def inside(root: str | os.PathLike[str], relative: str) -> Path:
    """Return ``root/relative`` resolved, if it stays inside ``root`` and is a file.

    Symlinks are resolved before the check, so a link pointing out of ``root`` is refused
    too.

    Raises
    ------
    PathError
        The path escapes ``root`` (``..``, an absolute path, a link) or is not a file.
    """
    base = Path(root).resolve()
    if "\0" in relative or relative.startswith(("/", "\\")):
        raise PathError(f"no such file: {relative!r}.")
    target = (base / relative).resolve()
    if target != base and base not in target.parents:
        raise PathError(f"no such file: {relative!r}.")
    if not target.is_file():
        raise PathError(f"no such file: {relative!r}.")
    return target
