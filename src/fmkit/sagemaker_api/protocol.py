"""AWS wire conventions shared by every service on the port: which service a request is
for, errors in each protocol's shape, ARNs and the fixed local account.

A request names its service in the SigV4 credential scope of ``Authorization``
(``Credential=AKID/DATE/REGION/SERVICE/aws4_request``) or, for presigned URLs, in the
``X-Amz-Credential`` query parameter. Credentials are accepted, never checked.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from xml.sax.saxutils import escape

#: the local account id every ARN and GetCallerIdentity report
ACCOUNT_ID = "000000000000"
DEFAULT_REGION = "us-east-1"

_SCOPE = re.compile(r"Credential=([^/,\s]*)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")


class ApiError(Exception):
    """An error answered in the protocol of the service the request was for.

    Parameters
    ----------
    code : str
        AWS's error code (``ValidationException``, ``NoSuchKey``, ...).
    message : str
        The text the client shows; for SageMaker the wording the SDK matches.
    status : int, default=400
    """

    def __init__(self, code: str, message: str, status: int = 400,
                 **extra: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra


def validation(message: str) -> ApiError:
    """Return SageMaker's ``ValidationException`` with ``message``."""
    return ApiError("ValidationException", message)


def credential_scope(headers: Any, query: Any) -> tuple[str | None, str | None]:
    """Return ``(region, service)`` from the SigV4 scope, or ``(None, None)`` if unsigned."""
    text = headers.get("authorization") or ""
    match = _SCOPE.search(text)
    if match is None:
        cred = query.get("X-Amz-Credential") or ""
        parts = cred.split("/")
        if len(parts) == 5 and parts[4] == "aws4_request":
            return parts[2], parts[3]
        return None, None
    return match.group(3), match.group(4)


def request_id() -> str:
    """Return a fresh request id (botocore copies it into ``ResponseMetadata``)."""
    return str(uuid.uuid4())


def json_error_body(error: ApiError, namespace: str) -> bytes:
    """Return a JSON 1.1 error body: ``{"__type": "<namespace>#Code", "message": ...}``."""
    return json.dumps({"__type": f"{namespace}#{error.code}",
                       "message": error.message}).encode()


def xml_error_body(error: ApiError, rid: str, resource: str = "") -> bytes:
    """Return an S3 REST-XML error body."""
    extra = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in error.extra.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
        f"<Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"
        f"<Resource>{escape(resource)}</Resource>{extra}<RequestId>{rid}</RequestId></Error>"
    ).encode()


def query_error_body(error: ApiError, rid: str) -> bytes:
    """Return a query-protocol (STS) error body."""
    return (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
        f"<Type>Sender</Type><Code>{escape(error.code)}</Code>"
        f"<Message>{escape(error.message)}</Message></Error>"
        f"<RequestId>{rid}</RequestId></ErrorResponse>"
    ).encode()


def arn(region: str, kind: str, name: str) -> str:
    """Return the SageMaker ARN of a resource; SageMaker writes the name in lower case."""
    return f"arn:aws:sagemaker:{region}:{ACCOUNT_ID}:{kind}/{name.lower()}"


_MODELS: dict[str, Any] = {}


def check_request(service: str, operation: str, body: dict[str, Any]) -> None:
    """Validate a JSON request against botocore's model of ``operation``, as AWS does before
    anything runs; a bad member is a ValidationException naming it. Without botocore (it
    comes with boto3 and s3fs) requests go unchecked."""
    try:
        import botocore.session
        from botocore.validate import ParamValidator
    except ImportError:  # pragma: no cover - boto3/s3fs absent
        return
    model = _MODELS.get(service)
    if model is None:
        model = _MODELS[service] = botocore.session.get_session().get_service_model(service)
    try:
        shape = model.operation_model(operation).input_shape
    except Exception:  # noqa: BLE001 - an operation botocore does not know: let it through
        return
    if shape is None:
        return
    report = ParamValidator().validate(body, shape)
    if report.has_errors():
        lines = report.generate_report().splitlines()
        errors = [line for line in lines if line.strip()]
        raise ApiError("ValidationException", f"{len(errors)} validation error(s) detected: "
                       + "; ".join(errors[:5]))
