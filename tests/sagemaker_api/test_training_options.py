"""SageMaker's training options reach fmkit's job: InstanceCount > 1 (torch.distributed
workers), MaxRuntimeInSeconds, ShardedByS3Key; UpdateEndpoint swaps the model served."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from sagemaker_api.local import BUCKET, recordio_bytes

pytestmark = pytest.mark.slow


def test_instance_count_and_max_runtime(session: Any, fm_data: dict[str, Any],
                                        aws_env: Any, clients: Any) -> None:
    import sagemaker

    from fmkit.registry import Registry
    from sagemaker_api.local import ROLE, fm_estimator

    s3 = clients["s3"]
    X, y = fm_data["X"], fm_data["y"]
    shards = f"{fm_data['prefix']}/sharded"
    for i in range(2):
        s3.put_object(Bucket=BUCKET, Key=f"{shards}/part-{i}.protobuf",
                      Body=recordio_bytes(X[i * 100:(i + 1) * 100], y[i * 100:(i + 1) * 100]))
    est = fm_estimator(session, fm_data, epochs=1)
    est.instance_count = 2
    est._current_job_name = None
    est.max_run = 3600
    train = sagemaker.inputs.TrainingInput(f"s3://{BUCKET}/{shards}/",
                                           distribution="ShardedByS3Key")
    est.fit({"train": train}, logs=False)
    name = est.latest_training_job.name
    desc = clients["sagemaker"].describe_training_job(TrainingJobName=name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["ResourceConfig"]["InstanceCount"] == 2
    request = Registry(aws_env.home).jobs.get(name).request
    assert request["instance_count"] == 2
    assert request["max_run_seconds"] == 3600
    assert request["channels"]["train"]["distribution"] == "ShardedByS3Key"
    assert ROLE == desc["RoleArn"]


def test_update_endpoint(session: Any, fm_data: dict[str, Any], clients: Any) -> None:
    from sagemaker_api.local import fm_estimator

    est = fm_estimator(session, fm_data, epochs=1)
    est.fit({"train": fm_data["train"]}, logs=False)
    sm = clients["sagemaker"]
    artifact = est.model_data
    for name in ("upd-model-a", "upd-model-b"):
        sm.create_model(ModelName=name, ExecutionRoleArn="arn:aws:iam::000000000000:role/r",
                        PrimaryContainer={"Image": est.training_image_uri(),
                                          "ModelDataUrl": artifact})
        sm.create_endpoint_config(EndpointConfigName=f"{name}-config", ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1,
            "InstanceType": "ml.t2.medium"}])
    with pytest.raises(Exception, match="Cannot create already existing model"):
        sm.create_model(ModelName="upd-model-a", ExecutionRoleArn="arn:aws:iam::0:role/r",
                        PrimaryContainer={"Image": est.training_image_uri(),
                                          "ModelDataUrl": artifact})
    sm.create_endpoint(EndpointName="upd-endpoint", EndpointConfigName="upd-model-a-config")
    waiter_deadline = time.monotonic() + 60

    def status() -> str:
        return str(sm.describe_endpoint(EndpointName="upd-endpoint")["EndpointStatus"])

    while status() == "Creating" and time.monotonic() < waiter_deadline:
        time.sleep(0.2)
    assert status() == "InService"
    sm.update_endpoint(EndpointName="upd-endpoint", EndpointConfigName="upd-model-b-config")
    while status() in ("Updating", "Creating") and time.monotonic() < waiter_deadline + 60:
        time.sleep(0.2)
    desc = sm.describe_endpoint(EndpointName="upd-endpoint")
    assert desc["EndpointStatus"] == "InService"
    assert desc["EndpointConfigName"] == "upd-model-b-config"
    row = fm_data["X"][0].toarray()[0].tolist()
    answer = clients["sagemaker-runtime"].invoke_endpoint(
        EndpointName="upd-endpoint", ContentType="application/json",
        Body=json.dumps({"instances": [{"features": row}]}))
    assert "predictions" in json.loads(answer["Body"].read())
    bad = clients["sagemaker-runtime"]
    with pytest.raises(Exception, match="ModelError"):
        bad.invoke_endpoint(EndpointName="upd-endpoint", ContentType="application/json",
                            Body=b'{"instances": [{"features": [1, 2]}]}')
    sm.delete_endpoint(EndpointName="upd-endpoint")


def test_stop_and_max_runtime(session: Any, fm_data: dict[str, Any], clients: Any) -> None:
    from sagemaker_api.local import fm_estimator

    sm = clients["sagemaker"]
    est = fm_estimator(session, fm_data, epochs=100000, mini_batch_size=10)
    est.max_run = 2
    est.fit({"train": fm_data["train"]}, logs=False)  # warns: Stopped, not Completed
    desc = sm.describe_training_job(TrainingJobName=est.latest_training_job.name)
    assert desc["TrainingJobStatus"] == "Stopped"
    assert desc["StoppingCondition"]["MaxRuntimeInSeconds"] == 2
    key = desc["ModelArtifacts"]["S3ModelArtifacts"].split(f"{BUCKET}/", 1)[1]
    assert clients["s3"].head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0

    est = fm_estimator(session, fm_data, epochs=100000, mini_batch_size=10)
    est.fit({"train": fm_data["train"]}, wait=False)
    name = est.latest_training_job.name
    deadline = time.monotonic() + 60
    while sm.describe_training_job(TrainingJobName=name)["SecondaryStatus"] != "Training" \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    sm.stop_training_job(TrainingJobName=name)
    assert sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] in (
        "Stopping", "Stopped")
    while sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "Stopping" \
            and time.monotonic() < deadline + 60:
        time.sleep(0.2)
    assert sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "Stopped"


def test_fmkit_deploy_endpoints_are_sagemaker_endpoints(session: Any, fm_data: dict[str, Any],
                                                        clients: Any, aws_env: Any) -> None:
    """An endpoint `fmkit deploy` started is described, listed, invoked and deleted through
    the SageMaker API."""
    from fmkit.jobs import endpoints
    from fmkit.registry import Registry
    from sagemaker_api.local import fm_estimator

    est = fm_estimator(session, fm_data, epochs=1)
    est.fit({"train": fm_data["train"]}, logs=False)
    registry = Registry(aws_env.home)
    model_dir = registry.models.get(est.latest_training_job.name).artifact
    endpoints.deploy(model_dir, "cli-endpoint", wait_s=60, registry=registry)
    sm = clients["sagemaker"]
    desc = sm.describe_endpoint(EndpointName="cli-endpoint")
    assert desc["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=desc["EndpointConfigName"])
    assert config["ProductionVariants"][0]["VariantName"] == "AllTraffic"
    assert "cli-endpoint" in [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]
    row = fm_data["X"][0].toarray()[0].tolist()
    answer = clients["sagemaker-runtime"].invoke_endpoint(
        EndpointName="cli-endpoint", ContentType="application/json",
        Body=json.dumps({"instances": [{"features": row}]}))
    assert "predictions" in json.loads(answer["Body"].read())
    sm.delete_endpoint(EndpointName="cli-endpoint")
    assert [r.name for r in registry.endpoints.list()].count("cli-endpoint") == 0
