"""STS over the query protocol: GetCallerIdentity, answering the fixed local account."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.responses import Response

from fmkit.sagemaker_api.protocol import ACCOUNT_ID, ApiError

_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


def handle(body: bytes, query: dict[str, str], rid: str) -> Response:
    """Answer one STS request (form-encoded ``Action=...``)."""
    params = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    params.update(query)
    action = params.get("Action")
    if action != "GetCallerIdentity":
        raise ApiError("InvalidAction", f"The local STS answers only GetCallerIdentity; got "
                       f"{action!r}.")
    xml = (f'<GetCallerIdentityResponse xmlns="{_NS}"><GetCallerIdentityResult>'
           f"<Arn>arn:aws:iam::{ACCOUNT_ID}:user/fmkit-local</Arn>"
           f"<UserId>AIDAFMKITLOCAL</UserId><Account>{ACCOUNT_ID}</Account>"
           f"</GetCallerIdentityResult><ResponseMetadata><RequestId>{rid}</RequestId>"
           "</ResponseMetadata></GetCallerIdentityResponse>")
    return Response(xml, media_type="text/xml")
