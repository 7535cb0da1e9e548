"""HyperparameterTuner(...).fit(), best_training_job(), deploy(); Transformer.transform()."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sagemaker_api.local import BUCKET, fm_estimator, recordio_bytes
from sagemaker_api.shapes import check_output

pytestmark = pytest.mark.slow


def test_tuner_fit_best_job_deploy(session: Any, fm_data: dict[str, Any],
                                   clients: Any) -> None:
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import JSONSerializer
    from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter

    est = fm_estimator(session, fm_data, epochs=1)
    tuner = HyperparameterTuner(
        est, objective_metric_name="test:binary_classification_accuracy",
        hyperparameter_ranges={"mini_batch_size": IntegerParameter(20, 100),
                               "factors_lr": ContinuousParameter(1e-4, 1e-1,
                                                                 scaling_type="Logarithmic")},
        objective_type="Maximize", max_jobs=2, max_parallel_jobs=1)
    tuner.fit({"train": fm_data["train"], "test": fm_data["test"]})
    sm = clients["sagemaker"]
    name = tuner.latest_tuning_job.name
    desc = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    check_output("DescribeHyperParameterTuningJob", desc)
    assert desc["HyperParameterTuningJobStatus"] == "Completed"
    assert desc["TrainingJobStatusCounters"]["Completed"] == 2
    best = tuner.best_training_job()
    assert best == desc["BestTrainingJob"]["TrainingJobName"]
    assert set(desc["BestTrainingJob"]["TunedHyperParameters"]) == {"mini_batch_size",
                                                                     "factors_lr"}
    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name)
    check_output("ListTrainingJobsForHyperParameterTuningJob", trials)
    assert len(trials["TrainingJobSummaries"]) == 2
    job = sm.describe_training_job(TrainingJobName=best)
    check_output("DescribeTrainingJob", job)
    assert job["TuningJobArn"].endswith(name.lower())
    check_output("ListHyperParameterTuningJobs", sm.list_hyper_parameter_tuning_jobs())

    predictor = tuner.deploy(1, "ml.t2.medium", serializer=JSONSerializer(),
                             deserializer=JSONDeserializer())
    try:
        row = fm_data["X"][0].toarray()[0].tolist()
        answer = predictor.predict({"instances": [{"features": row}]})
        assert 0.0 <= answer["predictions"][0]["score"] <= 1.0
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()


def test_transformer(session: Any, fm_data: dict[str, Any], clients: Any) -> None:
    est = fm_estimator(session, fm_data, epochs=1)
    est.fit({"train": fm_data["train"]}, logs=False)
    X, y = fm_data["X"], fm_data["y"]
    s3 = clients["s3"]
    prefix = f"{fm_data['prefix']}/batch"
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/in/part-0.protobuf",
                  Body=recordio_bytes(X[:30], y[:30]))
    transformer = est.transformer(1, "ml.m5.large",
                                  output_path=f"s3://{BUCKET}/{prefix}/out",
                                  accept="application/jsonlines")
    transformer.transform(f"s3://{BUCKET}/{prefix}/in/",
                          content_type="application/x-recordio-protobuf",
                          split_type="RecordIO", logs=True)
    transformer.wait()
    desc = clients["sagemaker"].describe_transform_job(
        TransformJobName=transformer.latest_transform_job.name)
    check_output("DescribeTransformJob", desc)
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    body = s3.get_object(Bucket=BUCKET, Key=f"{prefix}/out/part-0.protobuf.out")["Body"]
    lines = [json.loads(line) for line in body.read().decode().splitlines() if line.strip()]
    assert len(lines) == 30
    assert all("score" in line for line in lines)
