"""Check answers against botocore's own service model and validator."""

from __future__ import annotations

from typing import Any


def check_output(operation: str, response: dict[str, Any], service: str = "sagemaker") -> None:
    """Fail if ``response`` (as a boto3 client returned it) breaks ``operation``'s output
    shape: a required member missing, or a member of the wrong type."""
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).output_shape
    data = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    report = ParamValidator().validate(data, shape)
    assert not report.has_errors(), f"{operation}: {report.generate_report()}"
