"""The one Starlette app: SageMaker, its runtime, CloudWatch Logs, S3 and STS on one port.

A request is told apart by, in order: the runtime path (``POST /endpoints/{name}/
invocations``), ``X-Amz-Target`` (``SageMaker.<Op>``, ``Logs_20140328.<Op>``), and the SigV4
credential scope's service (``sts``; ``s3`` and unsigned requests go to S3). Each service
answers errors in its own protocol's shape; nothing a client sends brings the server down
(an unexpected exception is a 500 in that shape, logged with its traceback).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fmkit.sagemaker_api import logs, runtime, sts
from fmkit.sagemaker_api.bodies import read_small
from fmkit.sagemaker_api.context import Context
from fmkit.sagemaker_api.objects import ObjectStore
from fmkit.sagemaker_api.operations import OPERATIONS
from fmkit.sagemaker_api.protocol import (
    DEFAULT_REGION,
    ApiError,
    check_request,
    credential_scope,
    json_error_body,
    query_error_body,
    request_id,
    xml_error_body,
)
from fmkit.sagemaker_api.s3 import S3Api
from fmkit.sagemaker_api.state import ApiState

logger = logging.getLogger(__name__)

#: request bodies of the JSON APIs (SageMaker, Logs) and STS
MAX_JSON_BYTES = 16 * 1024 * 1024
#: one PutObject or UploadPart (S3's own limit is 5 GiB)
MAX_OBJECT_BYTES = 5 * 1024 ** 3
_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE"]


class Services:
    """The server's state and handlers, shared by every request."""

    def __init__(self, home: Path, *, max_object_bytes: int = MAX_OBJECT_BYTES) -> None:
        from fmkit.registry import Registry

        self.home = home
        self.registry = Registry(home)
        self.store = ObjectStore(home / "s3")
        self.state = ApiState(home / "sagemaker-api")
        self.s3 = S3Api(self.store, max_object_bytes=max_object_bytes)
        self.http: Any = None

    def context(self, region: str) -> Context:
        return Context(self.registry, self.store, self.state, region)


def _json_response(data: dict[str, Any], rid: str) -> Response:
    return Response(json.dumps(data, default=str), media_type="application/x-amz-json-1.1",
                    headers={"x-amzn-RequestId": rid})


def _json_error(exc: ApiError, namespace: str, rid: str) -> Response:
    return Response(json_error_body(exc, namespace), status_code=exc.status,
                    media_type="application/x-amz-json-1.1",
                    headers={"x-amzn-RequestId": rid})


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await read_small(request, MAX_JSON_BYTES)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError("SerializationException", "Start of structure or map found where "
                       "not expected: the request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError("SerializationException", "The request body must be a JSON object.")
    return body


async def _sagemaker(services: Services, request: Request, op: str, region: str,
                     rid: str) -> Response:
    handler = OPERATIONS.get(op)
    if handler is None:
        raise ApiError("UnknownOperationException", f"SageMaker.{op} is not an operation "
                       "this local SageMaker answers.")
    body = await _json_body(request)
    await run_in_threadpool(check_request, "sagemaker", op, body)
    result = await run_in_threadpool(handler, services.context(region), body)
    return _json_response(result, rid)


async def _logs(services: Services, request: Request, op: str, region: str,
                rid: str) -> Response:
    handler = logs.OPERATIONS.get(op)
    if handler is None:
        raise ApiError("UnknownOperationException", f"Logs_20140328.{op} is not an operation "
                       "this local CloudWatch Logs answers.")
    body = await _json_body(request)
    await run_in_threadpool(check_request, "logs", op, body)
    result = await run_in_threadpool(handler, services.context(region), body)
    return _json_response(result, rid)


def make_handler(services: Services) -> Any:
    async def handle(request: Request) -> Response:
        response = await dispatch(request)
        if _body_left(request):
            # the client may still send (or, after Expect: 100-continue, never send) the
            # body we did not read: end the connection so it cannot pose as the next request
            response.headers["Connection"] = "close"
        return response

    async def dispatch(request: Request) -> Response:
        rid = request_id()
        region, service = credential_scope(request.headers, request.query_params)
        region = region or DEFAULT_REGION
        target = request.headers.get("x-amz-target") or ""
        path = request.url.path
        kind = "s3"
        if request.method == "POST" and runtime.PATH.match(path):
            kind = "runtime"
        elif target.startswith("SageMaker."):
            kind = "sagemaker"
        elif target.startswith("Logs_20140328."):
            kind = "logs"
        elif service == "sts" or (service is None and request.method == "POST" and path == "/"
                                  and "x-www-form-urlencoded" in
                                  (request.headers.get("content-type") or "")):
            kind = "sts"
        try:
            if kind == "runtime":
                name = runtime.PATH.match(path).group("name")  # type: ignore[union-attr]
                return await runtime.invoke(request, services.context(region), name,
                                            services.http)
            if kind == "sagemaker":
                return await _sagemaker(services, request, target.split(".", 1)[1], region,
                                        rid)
            if kind == "logs":
                return await _logs(services, request, target.split(".", 1)[1], region, rid)
            if kind == "sts":
                body = await read_small(request, MAX_JSON_BYTES)
                return sts.handle(body, dict(request.query_params), rid)
            response = await services.s3.handle(request, region)
            response.headers.setdefault("x-amz-request-id", rid)
            return response
        except ApiError as exc:
            return _error(kind, exc, rid, path, request.method)
        except Exception:  # noqa: BLE001 - answer in the protocol, keep serving
            logger.exception("%s %s (%s) failed", request.method, path, kind)
            exc = ApiError("InternalFailure" if kind in ("sagemaker", "logs", "runtime")
                           else "InternalError", f"The local server failed on this request "
                           f"(request id {rid}); see its log.", 500)
            return _error(kind, exc, rid, path, request.method)

    return handle


def _body_left(request: Request) -> bool:
    headers = request.headers
    announced = headers.get("transfer-encoding") or \
        (headers.get("content-length") not in (None, "0"))
    return bool(announced) and not getattr(request, "_stream_consumed", False)


def _error(kind: str, exc: ApiError, rid: str, path: str, method: str) -> Response:
    if kind == "sagemaker":
        return _json_error(exc, "com.amazonaws.sagemaker", rid)
    if kind == "logs":
        return _json_error(exc, "com.amazonaws.logs", rid)
    if kind == "runtime":
        return runtime.error_response(exc, rid)
    if kind == "sts":
        return Response(query_error_body(exc, rid), status_code=exc.status,
                        media_type="text/xml")
    if method == "HEAD":  # S3 answers HEAD errors without a body
        return Response(status_code=exc.status, headers={"x-amz-request-id": rid})
    return Response(xml_error_body(exc, rid, path), status_code=exc.status,
                    media_type="application/xml", headers={"x-amz-request-id": rid})


def create_app(home: str | Path | None = None, *, max_object_bytes: int = MAX_OBJECT_BYTES,
               restore_endpoints: bool = True) -> Starlette:
    """Return the ASGI app serving ``home`` (default ``$FMKIT_HOME`` or ``~/.fmkit``).

    At start-up the endpoints of the registry whose servers are gone are restarted (or
    recorded Failed with the reason), so none is silently lost after a restart.
    """
    import contextlib

    from fmkit.registry.home import fmkit_home

    folder = Path(home).expanduser() if home is not None else fmkit_home()
    services = Services(folder, max_object_bytes=max_object_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        import httpx

        services.http = httpx.AsyncClient()
        if restore_endpoints:
            from fmkit.jobs import endpoints

            try:
                await run_in_threadpool(endpoints.restore, registry=services.registry)
            except Exception:  # noqa: BLE001 - a broken record must not stop the server
                logger.exception("could not restore the endpoints")
        try:
            yield
        finally:
            await services.http.aclose()

    handler = make_handler(services)
    app = Starlette(routes=[Route("/{path:path}", handler, methods=_METHODS)],
                    lifespan=lifespan)
    app.state.services = services
    return app
