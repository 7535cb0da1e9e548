"""Error answers as AWS sends them, a server that stays up after bad requests, and
CloudWatch Logs over a job's log lines (with the SDK's paging rules)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from sagemaker_api.local import BUCKET, REGION, ROLE
from sagemaker_api.shapes import check_output

_SM = {"Authorization": "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/sagemaker/"
                        "aws4_request, SignedHeaders=host, Signature=0",
       "Content-Type": "application/x-amz-json-1.1"}


def _code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


def test_missing_resources(clients: Any) -> None:
    sm = clients["sagemaker"]
    with pytest.raises(ClientError) as err:
        sm.describe_training_job(TrainingJobName="no-such-job")
    assert _code(err) == "ValidationException" and "Could not find" in str(err.value)
    with pytest.raises(ClientError, match='Could not find endpoint "no-such-endpoint"'):
        sm.describe_endpoint(EndpointName="no-such-endpoint")
    with pytest.raises(ClientError, match="Could not find model"):
        sm.describe_model(ModelName="no-such-model")
    with pytest.raises(ClientError, match="Could not find endpoint configuration"):
        sm.describe_endpoint_config(EndpointConfigName="no-such-config")
    with pytest.raises(ClientError) as err:
        clients["sagemaker-runtime"].invoke_endpoint(EndpointName="no-such-endpoint",
                                                     Body=b"{}")
    assert _code(err) == "ValidationError"


def _job_request(name: str, train: str, **hyperparameters: str) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": f"382416733822.dkr.ecr.{REGION}.amazonaws.com/"
                             "factorization-machines:1", "TrainingInputMode": "File"},
        "RoleArn": ROLE, "HyperParameters": hyperparameters,
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": train,
            "S3DataDistributionType": "FullyReplicated"}}}],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                           "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }


def test_bad_hyperparameter_fails_the_job(clients: Any, fm_data: dict[str, Any]) -> None:
    sm = clients["sagemaker"]
    sm.create_training_job(**_job_request("bad-hp", fm_data["train"], feature_dim="28",
                                          num_factors="4", predictor_type="classifier"))
    desc = sm.describe_training_job(TrainingJobName="bad-hp")
    check_output("DescribeTrainingJob", desc)
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("ClientError: ")
    assert "predictor_type" in desc["FailureReason"]
    with pytest.raises(ClientError) as err:
        sm.create_training_job(**_job_request("bad-hp", fm_data["train"]))
    assert _code(err) == "ResourceInUse"


def test_missing_training_data_fails_the_job(clients: Any) -> None:
    sm = clients["sagemaker"]
    clients["s3"].create_bucket(Bucket=BUCKET)
    sm.create_training_job(**_job_request("no-data", f"s3://{BUCKET}/nothing/here/",
                                          feature_dim="28", num_factors="4",
                                          predictor_type="regressor"))
    desc = sm.describe_training_job(TrainingJobName="no-data")
    assert desc["TrainingJobStatus"] == "Failed"
    assert "No S3 objects found under S3 URL" in desc["FailureReason"]


def test_unsupported_image_is_refused(clients: Any, fm_data: dict[str, Any]) -> None:
    request = _job_request("other-image", fm_data["train"])
    request["AlgorithmSpecification"]["TrainingImage"] = "123456789012.dkr.ecr.us-east-1." \
                                                         "amazonaws.com/xgboost:1"
    with pytest.raises(ClientError, match="factorization-machines") as err:
        clients["sagemaker"].create_training_job(**request)
    assert _code(err) == "ValidationException"


def test_malformed_requests_keep_the_server_up(aws_env: Any, clients: Any) -> None:
    url = aws_env.url
    bad_json = httpx.post(url, content=b"{not json",
                          headers=_SM | {"X-Amz-Target": "SageMaker.ListTrainingJobs"})
    assert bad_json.status_code == 400
    assert bad_json.json()["__type"].endswith("#SerializationException")
    unknown = httpx.post(url, content=b"{}",
                         headers=_SM | {"X-Amz-Target": "SageMaker.CreateCluster"})
    assert unknown.status_code == 400 and "UnknownOperation" in unknown.json()["__type"]
    wrong_type = httpx.post(url, content=b'{"TrainingJobName": 5}',
                            headers=_SM | {"X-Amz-Target": "SageMaker.DescribeTrainingJob"})
    assert wrong_type.status_code == 400
    assert "ValidationException" in wrong_type.json()["__type"]
    assert "TrainingJobName" in wrong_type.json()["message"]
    bad_xml = httpx.post(f"{url}/{BUCKET}?delete", content=b"<Delete><Object>",
                         headers={"Authorization": _SM["Authorization"].replace(
                             "sagemaker", "s3")})
    assert bad_xml.status_code in (400, 404) and b"<Code>" in bad_xml.content
    assert clients["sagemaker"].list_training_jobs()["ResponseMetadata"]["HTTPStatusCode"] \
        == 200


def test_request_bodies_are_bounded(aws_env: Any) -> None:
    from fmkit.sagemaker_api import app

    big = b" " * (app.MAX_JSON_BYTES + 10)
    answer = httpx.post(aws_env.url, content=big,
                        headers=_SM | {"X-Amz-Target": "SageMaker.ListModels"})
    assert answer.status_code == 400 and "EntityTooLarge" in answer.json()["__type"]


def _fake_job(home: Any, name: str, lines: list[str]) -> None:
    """A job as `fmkit train` records one, with log lines, without training."""
    from fmkit.registry import Registry

    registry = Registry(home)
    registry.jobs.create(name, hyperparameters={"num_factors": 4}, model_dir="/tmp/none",
                         secondary_status="Training", source="cli")
    registry.jobs.append_log(name, [(1_700_000_000.0 + i, m) for i, m in enumerate(lines)])


def test_logs_follow_the_sdk_paging_rules(aws_env: Any, clients: Any) -> None:
    lines = [f"#quality_metric: host=algo-1, epoch={i}, train rmse <loss>={1.0 / (i + 1)}"
             for i in range(25)]
    _fake_job(aws_env.home, "logged-job", lines)
    logs = clients["logs"]
    group = "/aws/sagemaker/TrainingJobs"
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="logged-job/",
                                        orderBy="LogStreamName", limit=1)
    check_output("DescribeLogStreams", streams, "logs")
    assert "nextToken" not in streams
    stream = streams["logStreams"][0]["logStreamName"]
    assert stream.startswith("logged-job/algo-1-")
    seen: list[str] = []
    token = None
    pages = 0
    while True:  # as sagemaker.logs.log_stream reads: until an empty page
        kwargs = {"nextToken": token} if token else {}
        page = logs.get_log_events(logGroupName=group, logStreamName=stream, startTime=0,
                                   startFromHead=True, limit=10, **kwargs)
        check_output("GetLogEvents", page, "logs")
        pages += 1
        if not page["events"]:
            break
        assert page["nextForwardToken"] != token
        token = page["nextForwardToken"]
        seen += [e["message"] for e in page["events"]]
    assert seen == lines and pages == 4
    later = logs.get_log_events(logGroupName=group, logStreamName=stream,
                                startTime=int((1_700_000_000.0 + 20) * 1000),
                                startFromHead=True)
    assert [e["message"] for e in later["events"]] == lines[20:]
    found = logs.filter_log_events(logGroupName=group, logStreamNamePrefix="logged-job/",
                                   filterPattern="epoch=3,")
    assert [e["message"] for e in found["events"]] == [lines[3]]
    with pytest.raises(ClientError) as err:
        logs.get_log_events(logGroupName=group, logStreamName="nope/algo-1-1")
    assert _code(err) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:
        logs.describe_log_streams(logGroupName="/aws/other")
    assert _code(err) == "ResourceNotFoundException"


def test_cli_jobs_are_sagemaker_jobs(aws_env: Any, clients: Any) -> None:
    """A job `fmkit train` recorded is listed and described by the SageMaker API."""
    _fake_job(aws_env.home, "cli-made-job", ["hello"])
    sm = clients["sagemaker"]
    listed = sm.list_training_jobs(NameContains="cli-made", MaxResults=5)
    check_output("ListTrainingJobs", listed)
    assert [s["TrainingJobName"] for s in listed["TrainingJobSummaries"]] == ["cli-made-job"]
    desc = sm.describe_training_job(TrainingJobName="cli-made-job")
    check_output("DescribeTrainingJob", desc)
    assert desc["TrainingJobStatus"] == "InProgress"
    assert desc["HyperParameters"]["num_factors"] == "4"


def test_tags(clients: Any, fm_data: dict[str, Any]) -> None:
    sm = clients["sagemaker"]
    arn = sm.create_training_job(**_job_request("tagged", fm_data["train"],
                                                predictor_type="nope"))["TrainingJobArn"]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == []
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "team", "Value": "recs"}])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "recs"}]
    assert json.loads(json.dumps(sm.list_tags(ResourceArn=arn)["Tags"]))


@pytest.mark.slow
def test_endpoint_with_a_broken_model_fails_with_the_reason(clients: Any) -> None:
    import time

    s3, sm = clients["s3"], clients["sagemaker"]
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="broken/model.tar.gz", Body=b"not a tarball")
    with pytest.raises(ClientError, match="Could not find model data"):
        sm.create_model(ModelName="missing-data", ExecutionRoleArn=ROLE, PrimaryContainer={
            "Image": "fmkit:latest", "ModelDataUrl": f"s3://{BUCKET}/nothing/model.tar.gz"})
    sm.create_model(ModelName="broken", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": "fmkit:latest", "ModelDataUrl": f"s3://{BUCKET}/broken/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName="broken-config", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "broken", "InitialInstanceCount": 1,
        "InstanceType": "ml.t2.medium"}])
    sm.create_endpoint(EndpointName="broken-endpoint", EndpointConfigName="broken-config")
    deadline = time.monotonic() + 60
    desc = sm.describe_endpoint(EndpointName="broken-endpoint")
    while desc["EndpointStatus"] == "Creating" and time.monotonic() < deadline:
        time.sleep(0.2)
        desc = sm.describe_endpoint(EndpointName="broken-endpoint")
    assert desc["EndpointStatus"] == "Failed"
    assert desc["FailureReason"]
    sm.delete_endpoint(EndpointName="broken-endpoint")


def test_sdk_fit_reports_a_bad_hyperparameter(session: Any, fm_data: dict[str, Any],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from sagemaker.exceptions import UnexpectedStatusException

    from sagemaker_api.local import fm_estimator

    est = fm_estimator(session, fm_data, predictor_type="classifier")
    with pytest.raises(UnexpectedStatusException, match="ClientError") as err:
        est.fit({"train": fm_data["train"]}, logs=True)
    assert "predictor_type" in str(err.value)
    assert "ClientError" in capsys.readouterr().out  # the log stream carries the reason
