"""The MovieLens notebook's flow with the real SDK: Estimator(factorization-machines image)
.fit(logs=True), deploy, predict (JSON and recordIO), delete_model, delete_endpoint."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from sagemaker_api.local import BUCKET, REGION, fm_estimator
from sagemaker_api.shapes import check_output

pytestmark = pytest.mark.slow


def test_fit_deploy_predict_delete(session: Any, fm_data: dict[str, Any], clients: Any,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from sagemaker.amazon.common import RecordDeserializer, RecordSerializer
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import JSONSerializer

    est = fm_estimator(session, fm_data)
    est.fit({"train": fm_data["train"], "test": fm_data["test"]}, logs=True)
    printed = capsys.readouterr().out
    assert "#quality_metric: host=algo-1, epoch=0" in printed
    assert "test binary_classification_accuracy" in printed
    assert "Completed - Training job completed" in printed

    job = est.latest_training_job.name
    sm = clients["sagemaker"]
    desc = sm.describe_training_job(TrainingJobName=job)
    check_output("DescribeTrainingJob", desc)
    assert desc["TrainingJobStatus"] == "Completed"
    assert desc["ModelArtifacts"]["S3ModelArtifacts"] == \
        f"s3://{BUCKET}/output/{job}/output/model.tar.gz"
    names = {m["MetricName"] for m in desc["FinalMetricDataList"]}
    assert "test:binary_classification_accuracy" in names
    assert [t["Status"] for t in desc["SecondaryStatusTransitions"]][-1] == "Completed"
    assert desc["HyperParameters"]["num_factors"] == "4"
    head = clients["s3"].head_object(Bucket=BUCKET, Key=f"output/{job}/output/model.tar.gz")
    assert head["ContentLength"] > 0

    predictor = est.deploy(1, "ml.t2.medium", serializer=JSONSerializer(),
                           deserializer=JSONDeserializer())
    endpoint = predictor.endpoint_name
    desc = sm.describe_endpoint(EndpointName=endpoint)
    check_output("DescribeEndpoint", desc)
    assert desc["EndpointStatus"] == "InService"
    check_output("DescribeEndpointConfig",
                 sm.describe_endpoint_config(EndpointConfigName=desc["EndpointConfigName"]))

    X = fm_data["X"]
    rows = X[:3].toarray()
    answer = predictor.predict({"instances": [{"features": r.tolist()} for r in rows]})
    assert len(answer["predictions"]) == 3
    scores = [p["score"] for p in answer["predictions"]]
    assert all(0.0 <= s <= 1.0 for s in scores)

    record_predictor = Predictor(endpoint, sagemaker_session=session,
                                 serializer=RecordSerializer(),
                                 deserializer=RecordDeserializer())
    records = record_predictor.predict(rows.astype(np.float32))
    got = [r.label["score"].float32_tensor.values[0] for r in records]
    assert np.allclose(got, scores, atol=1e-5)

    # the same call through a plain boto3 runtime client
    raw = clients["sagemaker-runtime"].invoke_endpoint(
        EndpointName=endpoint, ContentType="application/json", Accept="application/json",
        Body=json.dumps({"instances": [{"features": rows[0].tolist()}]}))
    assert raw["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert json.loads(raw["Body"].read())["predictions"][0]["score"] == \
        pytest.approx(scores[0], abs=1e-6)

    model_name = sm.describe_endpoint_config(
        EndpointConfigName=desc["EndpointConfigName"])["ProductionVariants"][0]["ModelName"]
    check_output("DescribeModel", sm.describe_model(ModelName=model_name))
    predictor.delete_model()
    predictor.delete_endpoint()
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="Could not find endpoint"):
        sm.describe_endpoint(EndpointName=endpoint)
    with pytest.raises(ClientError, match="Could not find model"):
        sm.describe_model(ModelName=model_name)


def test_factorization_machines_record_set(session: Any, clients: Any) -> None:
    import sagemaker

    from sagemaker_api.local import ROLE, planted_data

    clients["s3"].create_bucket(Bucket=BUCKET)
    X, y = planted_data()
    fm = sagemaker.FactorizationMachines(
        role=ROLE, instance_count=1, instance_type="ml.c5.xlarge", num_factors=4,
        predictor_type="binary_classifier", epochs=2, mini_batch_size=50,
        sagemaker_session=session, output_path=f"s3://{BUCKET}/fm-output",
        data_location=f"s3://{BUCKET}/record-set")
    train = fm.record_set(X.toarray().astype(np.float32), labels=y)
    assert train.s3_data_type == "ManifestFile"
    fm.fit(train, logs=False)
    desc = clients["sagemaker"].describe_training_job(
        TrainingJobName=fm.latest_training_job.name)
    assert desc["TrainingJobStatus"] == "Completed"
    channel = desc["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    assert channel["S3DataType"] == "ManifestFile"
    assert desc["HyperParameters"]["feature_dim"] == str(X.shape[1])

    predictor = fm.deploy(1, "ml.t2.medium")  # FactorizationMachinesPredictor: recordIO
    try:
        records = predictor.predict(X[:4].toarray().astype(np.float32))
        scores = [r.label["score"].float32_tensor.values[0] for r in records]
        assert len(scores) == 4 and all(0.0 <= v <= 1.0 for v in scores)
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()


def test_sdk_jobs_are_fmkit_jobs(session: Any, fm_data: dict[str, Any], aws_env: Any) -> None:
    """A job the SDK made is in `fmkit jobs list`, and its model in `fmkit models list`."""
    import subprocess
    import sys

    est = fm_estimator(session, fm_data, epochs=1)
    est.fit({"train": fm_data["train"]}, logs=False)
    job = est.latest_training_job.name
    env = {"FMKIT_HOME": str(aws_env.home), "PATH": "/usr/bin:/bin"}
    listed = subprocess.run([sys.executable, "-m", "fmkit", "jobs", "list"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert job in listed.stdout
    models = subprocess.run([sys.executable, "-m", "fmkit", "models", "list"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert job in models.stdout
    assert REGION
