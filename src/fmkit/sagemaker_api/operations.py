"""The SageMaker operations this server answers (``X-Amz-Target: SageMaker.<Op>``), and tags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fmkit.sagemaker_api import hosting, training, transform, tuning
from fmkit.sagemaker_api.context import Context, require
from fmkit.sagemaker_api.protocol import validation

Operation = Callable[[Context, dict[str, Any]], dict[str, Any]]


def add_tags(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    require(body, "ResourceArn", "Tags")
    ctx.state.add_tags(body["ResourceArn"], body["Tags"])
    return {"Tags": body["Tags"]}


def list_tags(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    require(body, "ResourceArn")
    return {"Tags": ctx.state.tags(body["ResourceArn"])}


def delete_tags(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    require(body, "ResourceArn", "TagKeys")
    if not isinstance(body["TagKeys"], list):
        raise validation("TagKeys must be a list of strings.")
    ctx.state.delete_tags(body["ResourceArn"], [str(k) for k in body["TagKeys"]])
    return {}


OPERATIONS: dict[str, Operation] = {
    "CreateTrainingJob": training.create_training_job,
    "DescribeTrainingJob": training.describe_training_job,
    "ListTrainingJobs": training.list_training_jobs,
    "StopTrainingJob": training.stop_training_job,
    "CreateModel": hosting.create_model,
    "DescribeModel": hosting.describe_model,
    "ListModels": hosting.list_models,
    "DeleteModel": hosting.delete_model,
    "CreateEndpointConfig": hosting.create_endpoint_config,
    "DescribeEndpointConfig": hosting.describe_endpoint_config,
    "DeleteEndpointConfig": hosting.delete_endpoint_config,
    "CreateEndpoint": hosting.create_endpoint,
    "DescribeEndpoint": hosting.describe_endpoint,
    "ListEndpoints": hosting.list_endpoints,
    "UpdateEndpoint": hosting.update_endpoint,
    "DeleteEndpoint": hosting.delete_endpoint,
    "CreateHyperParameterTuningJob": tuning.create_tuning_job,
    "DescribeHyperParameterTuningJob": tuning.describe_tuning_job,
    "ListHyperParameterTuningJobs": tuning.list_tuning_jobs,
    "ListTrainingJobsForHyperParameterTuningJob": tuning.list_trials,
    "StopHyperParameterTuningJob": tuning.stop_tuning_job,
    "CreateTransformJob": transform.create_transform_job,
    "DescribeTransformJob": transform.describe_transform_job,
    "ListTransformJobs": transform.list_transform_jobs,
    "AddTags": add_tags,
    "ListTags": list_tags,
    "DeleteTags": delete_tags,
}
