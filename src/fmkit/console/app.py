"""The console's ASGI app: routes, the CSRF check on every POST, and error pages.

Every route goes through :func:`_endpoint`, which reads and checks the form of a POST
(CSRF token, size), runs the page function in a worker thread (the registry is SQLite,
blocking) and turns what it returns, or raises, into a response:

- an :class:`fmkit.errors.FMError` a page did not handle becomes a 400 page with its message
  (a missing record 404, a bad CSRF token 403), never a traceback;
- anything else becomes a 500 page that says only a request id; the traceback goes to the
  log under that id.
"""

from __future__ import annotations

import logging
import os
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fmkit.console import security
from fmkit.console.context import Ctx, Reply
from fmkit.console.html import message_page
from fmkit.errors import FMError, RegistryError
from fmkit.registry import Registry

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
Page = Callable[[Ctx], Reply]


def _routes() -> list[tuple[str, str, Page]]:
    from fmkit.console.pages import endpoints, files, jobs, models, overview, train, tuning

    return [
        ("GET", "/", overview.overview),
        ("GET", "/jobs", jobs.list_page),
        ("GET", "/jobs/{name}", jobs.job_page),
        ("POST", "/jobs/{name}/stop", jobs.stop),
        ("GET", "/api/jobs", jobs.list_api),
        ("GET", "/api/jobs/{name}", jobs.job_api),
        ("GET", "/api/jobs/{name}/log", jobs.log_api),
        ("GET", "/tuning", tuning.list_page),
        ("GET", "/tuning/{name}", tuning.tuning_page),
        ("POST", "/tuning/{name}/stop", tuning.stop),
        ("GET", "/api/tuning/{name}", tuning.tuning_api),
        ("GET", "/models", models.list_page),
        ("GET", "/models/{name}", models.model_page),
        ("GET", "/models/{name}/files/{path:path}", models.model_file),
        ("POST", "/models/{name}/export", models.export),
        ("POST", "/models/{name}/deploy", models.deploy),
        ("GET", "/endpoints", endpoints.list_page),
        ("GET", "/endpoints/{name}", endpoints.endpoint_page),
        ("GET", "/api/endpoints", endpoints.list_api),
        ("GET", "/api/endpoints/{name}", endpoints.endpoint_api),
        ("POST", "/endpoints/{name}/stop", endpoints.stop),
        ("POST", "/endpoints/{name}/start", endpoints.start),
        ("POST", "/endpoints/{name}/delete", endpoints.delete),
        ("POST", "/endpoints/{name}/invoke", endpoints.invoke),
        ("POST", "/endpoints/{name}/recommend", endpoints.recommend),
        ("POST", "/endpoints/{name}/similar", endpoints.similar),
        ("GET", "/train", train.form_page),
        ("POST", "/train", train.submit),
        ("GET", "/files/{path:path}", files.download),
    ]


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, security.CSRFError):
        return 403
    if isinstance(exc, (RegistryError, security.PathError)):
        return 404
    if isinstance(exc, security.FormTooLargeError):
        return 413
    if isinstance(exc, FMError):
        return 400
    return 500


def create_app(home: str | os.PathLike[str] | None = None, *,
               registry: Registry | None = None, secret: bytes | None = None,
               allowed_hosts: list[str] | None = None) -> Any:
    """Return the console's Starlette app over the registry at ``home``.

    Parameters
    ----------
    home : path-like, optional
        FMKIT_HOME to show (default ``$FMKIT_HOME`` or ``~/.fmkit``).
    registry : Registry, optional
        An open registry (then ``home`` is not used).
    secret : bytes, optional
        Key that signs CSRF tokens; default a random one per process.
    allowed_hosts : list of str, optional
        Host headers accepted (against DNS rebinding); default localhost names. ``["*"]``
        accepts any.

    Raises
    ------
    FMError
        starlette is not installed (``pip install 'fmkit[serve]'``).
    """
    try:
        from starlette.applications import Starlette
        from starlette.concurrency import run_in_threadpool
        from starlette.middleware import Middleware
        from starlette.middleware.trustedhost import TrustedHostMiddleware
        from starlette.requests import Request
        from starlette.responses import (
            FileResponse,
            HTMLResponse,
            JSONResponse,
            RedirectResponse,
            Response,
        )
        from starlette.routing import Mount, Route
        from starlette.staticfiles import StaticFiles
    except ImportError:
        raise FMError("the console needs the 'serve' extra: pip install 'fmkit[serve]'") from None

    reg = registry if registry is not None else Registry(home)
    key = secret or secrets.token_bytes(32)
    hosts = allowed_hosts or ["127.0.0.1", "localhost", "::1", "[::1]"]

    def respond(reply: Reply, token: str, new_token: bool) -> Response:
        response: Response
        if reply.kind == "redirect":
            response = RedirectResponse(str(reply.body), status_code=reply.status)
        elif reply.kind == "json":
            response = JSONResponse(reply.body, status_code=reply.status)
        elif reply.kind == "file":
            name = reply.headers.get("filename") or None
            response = FileResponse(str(reply.body), filename=name)
        else:
            response = HTMLResponse(str(reply.body), status_code=reply.status)
        response.headers["x-content-type-options"] = "nosniff"
        response.headers["x-frame-options"] = "DENY"
        response.headers["referrer-policy"] = "same-origin"
        response.headers["cache-control"] = "no-store"
        response.headers["content-security-policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'")
        if new_token:
            response.set_cookie(security.COOKIE, token, httponly=True, samesite="strict",
                                path="/")
        return response

    def error_reply(exc: BaseException, request_id: str, token: str, wants_json: bool
                    ) -> Reply:
        code = _status_of(exc)
        if code >= 500:
            logger.error("console request %s failed", request_id, exc_info=exc)
            text = f"internal error (request id {request_id}); see the console's log."
        else:
            text = str(exc)
        if wants_json:
            return Reply({"message": text, "request_id": request_id}, code, "json")
        title = {403: "Forbidden", 404: "Not found", 413: "Too large"}.get(
            code, "Error" if code < 500 else "Internal error")
        return Reply(message_page(title, text, csrf=token), code)

    def make(fn: Page, method: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            request_id = uuid.uuid4().hex[:16]
            cookie = request.cookies.get(security.COOKIE)
            fresh = not security.valid_token(key, cookie)
            token = security.new_token(key) if fresh else str(cookie)
            wants_json = (request.url.path.startswith("/api/")
                          or "application/json" in request.headers.get("accept", ""))
            try:
                form: dict[str, str] = {}
                if method == "POST":
                    declared = request.headers.get("content-length")
                    if declared and declared.isdigit() and \
                            int(declared) > security.MAX_FORM_BYTES:
                        raise security.FormTooLargeError("form body is over the limit of "
                                                         f"{security.MAX_FORM_BYTES} bytes.")
                    form = security.parse_form(await request.body(),
                                               request.headers.get("content-type"))
                    security.check_csrf(key, cookie, form.get(security.FIELD)
                                        or request.headers.get(security.HEADER))
                ctx = Ctx(registry=reg, csrf=token, path_params=dict(request.path_params),
                          query=dict(request.query_params), form=form, method=method,
                          settings={"request_id": request_id})
                reply = await run_in_threadpool(fn, ctx)
            except Exception as exc:
                reply = error_reply(exc, request_id, token, wants_json)
            return respond(reply, token, fresh)

        return endpoint

    routes: list[Any] = [Route(path, make(fn, method), methods=[method])
                         for method, path, fn in _routes()]
    routes.append(Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"))

    async def not_found(request: Request, exc: Exception) -> Response:
        code = getattr(exc, "status_code", 404)
        text = "no such page." if code == 404 else f"method {request.method} not allowed here."
        return HTMLResponse(message_page("Not found" if code == 404 else "Not allowed", text),
                            status_code=code)

    async def server_error(request: Request, exc: Exception) -> Response:
        rid = uuid.uuid4().hex[:16]
        logger.error("console request %s failed", rid, exc_info=exc)
        return HTMLResponse(message_page("Internal error",
                                         f"internal error (request id {rid})."),
                            status_code=500)

    middleware = [] if "*" in hosts else [Middleware(TrustedHostMiddleware,
                                                     allowed_hosts=hosts)]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={404: not_found, 405: not_found,
                                        Exception: server_error})
    app.state.registry = reg
    return app


def run(*, host: str = "127.0.0.1", port: int = 8788, home: str | None = None,
        log_level: str = "warning") -> None:
    """Serve the console with uvicorn until Ctrl-C."""
    try:
        import uvicorn
    except ImportError:
        raise FMError("the console needs the 'serve' extra: pip install 'fmkit[serve]'") from None
    hosts = ["*"] if host in ("0.0.0.0", "::") else ["127.0.0.1", "localhost", "::1", "[::1]",
                                                     host]
    app = create_app(home, allowed_hosts=hosts)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
