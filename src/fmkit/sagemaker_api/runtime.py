"""SageMaker runtime: ``POST /endpoints/{name}/invocations`` relayed to that endpoint's
``fmkit serve`` process (which maps model errors to 424 ModelError itself, spec section 7);
an unknown or not-yet-serving endpoint is answered here with the same error shapes."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from fmkit.sagemaker_api.bodies import read_small
from fmkit.sagemaker_api.context import Context
from fmkit.sagemaker_api.protocol import ACCOUNT_ID, ApiError

PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations$")
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
_FORWARDED = ("content-type", "accept", "x-amzn-sagemaker-custom-attributes",
              "x-amzn-sagemaker-target-model", "x-amzn-sagemaker-target-variant",
              "x-amzn-sagemaker-target-container-hostname", "x-amzn-sagemaker-inference-id",
              "x-amzn-sagemaker-enable-explanations", "x-amzn-sagemaker-session-id")
_RETURNED = ("content-type", "x-amzn-invoked-production-variant",
             "x-amzn-sagemaker-custom-attributes", "x-amzn-requestid")


def error_response(exc: ApiError, rid: str) -> Response:
    """A runtime error: JSON ``{"message"}`` with the code in ``x-amzn-ErrorType``."""
    return Response(json.dumps({"message": exc.message}), status_code=exc.status,
                    media_type="application/json",
                    headers={"x-amzn-ErrorType": exc.code, "x-amzn-RequestId": rid})


async def invoke(request: Request, ctx: Context, name: str, client: Any) -> Response:
    """Relay one InvokeEndpoint call."""
    from fmkit.errors import FMError
    from fmkit.jobs import endpoints

    try:
        record = await run_in_threadpool(endpoints.describe, name, registry=ctx.registry)
    except FMError:
        raise ApiError("ValidationError", f"Endpoint {name} of account {ACCOUNT_ID} not "
                       "found.") from None
    if record.status == "Creating":  # its server is still loading the model
        raise ApiError("ModelNotReadyException", f"Model for endpoint {name} is not ready "
                       "yet (status Creating); retry once DescribeEndpoint reports InService.",
                       429)
    if record.status != "InService":
        raise ApiError("ValidationError", f"Endpoint {name} is not in service (status "
                       f"{record.status}); see DescribeEndpoint's FailureReason.")
    body = await read_small(request, MAX_PAYLOAD_BYTES)
    if not body:
        raise ApiError("ValidationError", "1 validation error detected: Value null at 'body' "
                       "failed to satisfy constraint: Member must not be null.")
    headers = {k: request.headers[k] for k in _FORWARDED if k in request.headers}
    import httpx

    if client is None:  # an app run without its lifespan (a test client)
        async with httpx.AsyncClient() as own:
            return await invoke_with(own, record, name, body, headers)
    return await invoke_with(client, record, name, body, headers)


async def invoke_with(client: Any, record: Any, name: str, body: bytes,
                      headers: dict[str, str]) -> Response:
    """POST ``body`` to the endpoint's server and pass its answer back."""
    import httpx

    try:
        answer = await client.post(f"{record.url}/endpoints/{name}/invocations", content=body,
                                   headers=headers, timeout=httpx.Timeout(60.0, connect=5.0))
    except httpx.HTTPError as exc:
        raise ApiError("InternalFailure", f"Endpoint {name}: its server at {record.url} did "
                       f"not answer ({type(exc).__name__}).", 500) from None
    out = {k: answer.headers[k] for k in answer.headers.keys() if k.lower() in _RETURNED
           or k.lower() == "x-amzn-errortype"}
    return Response(answer.content, status_code=answer.status_code, headers=out)
