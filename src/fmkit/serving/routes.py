"""HTTP handlers of the model server and the one exception-to-status table.

Routes (spec sections 6 and 7):

- ``GET /ping``: 200 with an empty body once the model is loaded, else 503;
- ``POST /invocations``: score a body (:mod:`fmkit.io.codecs`), as a bare ASGI app
  that :class:`FastPathMiddleware` reaches before any routing;
- ``POST /endpoints/{name}/invocations``: the same behind SageMaker's runtime API, with the
  error mapping botocore expects (ValidationError 400, ModelError 424,
  ModelNotReadyException 429);
- ``GET /execution-parameters``: batch transform settings;
- ``POST /recommend``: ``{"user": "1", "k": 10, "exclude_seen": true, "context": {...},
  "exclude": [...], "min_score": 3.5, "label_only": false}``, or ``"users": [...]`` for
  many users at once: at most ``max_users_per_request`` of them (413 beyond), ``k`` at
  most the model's number of items and ``max_k`` when set (400 beyond);
- ``POST /similar``: ``{"item": "50", "k": 10}``.

Errors are JSON ``{"message": ..., "request_id": ...}``; a 500 never shows a traceback.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fmkit.errors import DataError, FMError
from fmkit.inference.scoring import score_body
from fmkit.io import codecs
from fmkit.registry.records import valid_name

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from fmkit.inference.predictor import Predictor
    from fmkit.inference.recommend import Recommender

logger = logging.getLogger(__name__)

DEFAULT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
DEFAULT_MAX_USERS_PER_REQUEST = 1000
_THREAD_BYTES = 256 * 1024  # bodies above this are scored off the event loop
_THREAD_SCORES = 1 << 20  # and recommendations computing more user x item scores than this


class ModelNotReadyError(FMError):
    """The model is not loaded yet (HTTP 503, or 429 ModelNotReadyException on the façade)."""


# the one exception -> status table; first match wins, anything else is 500
ERROR_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (codecs.PayloadTooLargeError, 413),
    (codecs.UnsupportedMediaTypeError, 415),
    (ModelNotReadyError, 503),
    (DataError, 400),
    (FMError, 400),
)


def status_for(exc: BaseException) -> int:
    """Return the HTTP status of an exception raised while handling a request."""
    for kind, status in ERROR_STATUS:
        if isinstance(exc, kind):
            return status
    return 500


@dataclass
class ServerState:
    """What one worker holds: the model, loaded once, and the server's settings."""

    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    batch_mode: bool = False
    endpoint_names: tuple[str, ...] = ()
    predictor: Predictor | None = None
    recommender: Recommender | None = None
    model_dir: str | None = None
    max_users_per_request: int = DEFAULT_MAX_USERS_PER_REQUEST
    max_k: int | None = None  # None: the model's number of items
    requests_served: int = 0  # POSTs this worker answered (GET /stats); /ping not counted

    def require_predictor(self) -> Predictor:
        if self.predictor is None:
            raise ModelNotReadyError("the model is not loaded yet; retry once /ping answers 200.")
        return self.predictor

    def require_recommender(self) -> Recommender:
        predictor = self.require_predictor()
        if self.recommender is None:
            from fmkit.inference.recommend import Recommender

            self.recommender = Recommender(predictor.artifact)
        return self.recommender


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.fmkit
    return state


def _request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = request.state.request_id = uuid.uuid4().hex
    return str(rid)


def error_message(exc: BaseException, status: int, request_id: str) -> str:
    """Return the client-facing text of ``exc``: its message, or a generic one for 500."""
    if status >= 500 and not isinstance(exc, FMError):
        return f"internal error (request id {request_id}); see the server log."
    return str(exc)


def error_status(exc: BaseException, request_id: str) -> tuple[int, str]:
    """Return ``(status, client-facing message)`` of ``exc``; 5xx are logged with the trace."""
    status = status_for(exc)
    if status >= 500:
        logger.error("request %s failed", request_id, exc_info=exc)
    return status, error_message(exc, status, request_id)


def error_response(request: Request, exc: BaseException) -> Response:
    """Turn ``exc`` into a JSON error response through :data:`ERROR_STATUS`."""
    from starlette.responses import JSONResponse

    rid = _request_id(request)
    status, message = error_status(exc, rid)
    return JSONResponse({"message": message, "request_id": rid},
                        status_code=status, headers={"x-amzn-RequestId": rid})


async def read_body(request: Request, limit: int) -> bytes:
    """Return the request body, refusing more than ``limit`` bytes (413) without reading it all."""
    declared = request.headers.get("content-length")
    return await _receive_body(request.receive, None if declared is None else declared.encode(),
                               limit)


async def invoke(state: ServerState, body: bytes, content_type: str | None,
                 accept: str | None) -> tuple[bytes, str]:
    """Score a request body: small ones inline, large ones off the event loop."""
    from starlette.concurrency import run_in_threadpool

    args = (state.require_predictor(), body, content_type, accept)
    if len(body) > _THREAD_BYTES:
        return await run_in_threadpool(score_body, *args, batch_mode=state.batch_mode)
    return score_body(*args, batch_mode=state.batch_mode)


# ---------------------------------------------------------------------------------- handlers
class InvocationsApp:
    """``POST /invocations`` as a bare ASGI app: no request or response objects.

    Scoring one instance takes tens of microseconds, so framework overhead would dominate;
    this handler reads the headers and body straight from the ASGI messages. Errors go
    through :data:`ERROR_STATUS` like every other route.
    """

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        state = self.state
        content_type = accept = None
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"accept":
                accept = value.decode("latin-1")
            elif name == b"content-length":
                declared = value
        try:
            state.require_predictor()  # 503 before reading the body
            body = await _receive_body(receive, declared, state.max_payload_bytes)
            data, kind = await invoke(state, body, content_type, accept)
            status = 200
        except Exception as exc:
            import orjson

            rid = uuid.uuid4().hex
            status, message = error_status(exc, rid)
            data = orjson.dumps({"message": message, "request_id": rid})
            kind = codecs.JSON
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", kind.encode()),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})


async def _receive_body(receive: Any, declared: bytes | None, limit: int) -> bytes:
    """Read an ASGI request body, refusing more than ``limit`` bytes (413) early."""
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise DataError(f"Content-Length {declared!r} is not a number.") from None
        if size > limit:
            raise codecs.PayloadTooLargeError(
                f"request body is {size} bytes; the limit is {limit} bytes "
                f"({limit / 1048576:g} MB). Split the request or raise --max-payload-mb."
            )
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise DataError("the client disconnected before sending the whole body.")
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise codecs.PayloadTooLargeError(
                f"request body is over the limit of {limit} bytes; split the request."
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class FastPathMiddleware:
    """Send ``POST /invocations`` straight to :class:`InvocationsApp`, past routing."""

    def __init__(self, app: Any, handler: InvocationsApp) -> None:
        self.app = app
        self.handler = handler

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            self.handler.state.requests_served += 1
            if scope["path"] == "/invocations":
                await self.handler(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def ping(request: Request) -> Response:
    from starlette.responses import Response

    if _state(request).predictor is None:
        return Response(b'{"message": "model not loaded"}', status_code=503,
                        media_type=codecs.JSON)
    return Response(b"", status_code=200)


async def execution_parameters(request: Request) -> Response:
    from starlette.responses import JSONResponse

    state = _state(request)
    return JSONResponse({
        "MaxConcurrentTransforms": os.cpu_count() or 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": max(1, state.max_payload_bytes // (1024 * 1024)),
    })


def _facade_error(request_id: str, status: int, error_type: str, body: dict[str, Any]
                  ) -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse(body, status_code=status,
                        headers={"x-amzn-ErrorType": error_type, "x-amzn-RequestId": request_id})


async def endpoint_invocations(request: Request) -> Response:
    """SageMaker runtime ``InvokeEndpoint``: model errors become 424 ModelError, and so on."""
    from starlette.responses import Response

    rid = uuid.uuid4().hex
    state = _state(request)
    name = request.path_params["name"]
    if not valid_name(name):
        return _facade_error(rid, 400, "ValidationError", {
            "message": f"1 validation error detected: Value {name!r} at 'endpointName' failed "
                       "to satisfy constraint: Member must satisfy regular expression pattern: "
                       "^[a-zA-Z0-9](-*[a-zA-Z0-9])*$ and have length 1 to 63."})
    if state.endpoint_names and name not in state.endpoint_names:
        return _facade_error(rid, 400, "ValidationError", {
            "message": f"Endpoint {name} not found; this server serves "
                       f"{', '.join(state.endpoint_names)}."})
    if state.predictor is None:
        return _facade_error(rid, 429, "ModelNotReadyException", {
            "message": f"Model for endpoint {name} is not ready; retry once it is loaded."})
    if request.headers.get("content-length") == "0":
        return _facade_error(rid, 400, "ValidationError", {
            "message": "1 validation error detected: Value null at 'body' failed to satisfy "
                       "constraint: Member must not be null."})
    try:
        body = await read_body(request, state.max_payload_bytes)
        data, kind = await invoke(state, body, request.headers.get("content-type"),
                                  request.headers.get("accept"))
    except Exception as exc:
        status, text = error_status(exc, rid)
        side = "client" if status < 500 else "server"
        return _facade_error(rid, 424, "ModelError", {
            "message": f"Received {side} error ({status}) from model with message "
                       f"\"{text}\". See the fmkit server log for endpoint {name}.",
            "OriginalStatusCode": status,
            "OriginalMessage": text,
            "LogStreamArn": "",
        })
    variant = request.headers.get("x-amzn-sagemaker-target-variant") or "AllTraffic"
    return Response(data, media_type=kind, headers={
        "x-Amzn-Invoked-Production-Variant": variant, "x-amzn-RequestId": rid})


async def _json_body(request: Request) -> dict[str, Any]:
    body = await read_body(request, _state(request).max_payload_bytes)
    doc = codecs.parse_json(body) if body.strip() else None
    if not isinstance(doc, dict):
        raise DataError("the body must be a JSON object.")
    return doc


def _int_field(doc: dict[str, Any], name: str, default: int) -> int:
    value = doc.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(f'"{name}" must be an integer >= 0; got {value!r}.')
    return value


def _float_field(doc: dict[str, Any], name: str) -> float | None:
    value = doc.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f'"{name}" must be a number; got {value!r}.')
    return float(value)


def _bool_field(doc: dict[str, Any], name: str, default: bool) -> bool:
    value = doc.get(name, default)
    if not isinstance(value, bool):
        raise DataError(f'"{name}" must be true or false; got {value!r}.')
    return value


async def recommend(request: Request) -> Response:
    from starlette.responses import Response

    state = _state(request)
    doc = await _json_body(request)
    rec = state.require_recommender()
    users = doc.get("users")
    if isinstance(users, list) and len(users) > state.max_users_per_request:
        raise codecs.PayloadTooLargeError(
            f'"users" names {len(users)} users; this server takes at most '
            f"{state.max_users_per_request} per request (serve --max-users-per-request). "
            "Split the list into several requests.")
    k = _int_field(doc, "k", 10)
    if k > rec.n_items:
        raise DataError(f'"k" is {k}, but the model has {rec.n_items} items; ask for at most '
                        f"{rec.n_items}.")
    if state.max_k is not None and k > state.max_k:
        raise DataError(f'"k" is {k}; this server answers at most {state.max_k} items per '
                        "user (serve --max-k).")
    context = doc.get("context")
    if context is not None and not isinstance(context, dict):
        raise DataError('"context" must be an object of field -> value.')
    exclude = doc.get("exclude") or []
    if not isinstance(exclude, list):
        raise DataError('"exclude" must be a list of raw item ids.')
    options: dict[str, Any] = dict(k=k, exclude_seen=_bool_field(doc, "exclude_seen", True),
                   exclude=[str(x) for x in exclude], context=context,
                   min_score=_float_field(doc, "min_score"),
                   label_only=_bool_field(doc, "label_only", False))
    import orjson
    from starlette.concurrency import run_in_threadpool

    if "users" in doc:
        users = doc["users"]
        if not isinstance(users, list) or not all(isinstance(u, (str, int)) for u in users):
            raise DataError('"users" must be a list of raw user ids.')

        def many() -> dict[str, Any]:
            return {"results": [r.to_dict() for r in
                                rec.recommend_many([str(u) for u in users], **options)]}

        work: Any = many
        size = len(users) * rec.n_items
    else:
        user = doc.get("user")
        if not isinstance(user, (str, int)) or isinstance(user, bool):
            got = "" if user is None else f"; got {user!r} ({type(user).__name__})"
            raise DataError('the body needs "user": "<raw user id>" (a string or an integer; '
                            f'or "users": [...]){got}.')

        def one() -> dict[str, Any]:
            return rec.recommend(str(user), **options).to_dict()

        work, size = one, rec.n_items
    # large score matrices are computed off the event loop so /ping stays responsive
    result = await run_in_threadpool(work) if size > _THREAD_SCORES else work()
    return Response(orjson.dumps(result), media_type=codecs.JSON)


async def similar(request: Request) -> Response:
    import orjson
    from starlette.responses import Response

    state = _state(request)
    doc = await _json_body(request)
    rec = state.require_recommender()
    item = doc.get("item")
    if not isinstance(item, (str, int)) or isinstance(item, bool):
        raise DataError('the body needs "item": "<raw item id>".')
    result = rec.similar(str(item), k=_int_field(doc, "k", 10))
    body = {"item": result.query,  # items as in /recommend: item, score and title when known
            "similar": result.to_dict(key="item")["recommendations"]}
    return Response(orjson.dumps(body), media_type=codecs.JSON)


async def stats(request: Request) -> Response:
    """``GET /stats``: what this worker served (``requests_served`` counts its POSTs)."""
    from starlette.responses import JSONResponse

    state = _state(request)
    return JSONResponse({"requests_served": state.requests_served, "pid": os.getpid(),
                         "model_dir": state.model_dir})
