"""The SageMaker FM MovieLens notebook, cell for cell, against the local server (as in
docs/sagemaker-local.md): its own data loading, upload, Estimator, fit, deploy, predict."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sagemaker_api.local import BUCKET, REGION, ROLE

pytestmark = pytest.mark.slow

N_USERS, N_MOVIES = 943, 1682
N_FEATURES = N_USERS + N_MOVIES


def load_dataset(path: Path) -> tuple[Any, np.ndarray]:
    """The notebook's loadDataset: one-hot user, one-hot movie, label rating >= 4."""
    import scipy.sparse as sp

    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    X = sp.lil_matrix((len(rows), N_FEATURES), dtype=np.float32)
    y = np.zeros(len(rows), dtype=np.float32)
    for i, (user, movie, rating, _) in enumerate(rows):
        X[i, int(user) - 1] = 1
        X[i, N_USERS + int(movie) - 1] = 1
        y[i] = 1.0 if int(rating) >= 4 else 0.0
    return X.tocsr(), y


def fm_serializer(data: np.ndarray) -> str:
    return json.dumps({"instances": [{"features": row.tolist()} for row in data]})


def test_movielens_notebook(ml100k: Path, session: Any) -> None:
    import boto3
    import sagemaker
    from sagemaker.amazon.common import write_spmatrix_to_sparse_tensor
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import SimpleBaseSerializer

    X_train, Y_train = load_dataset(ml100k / "ua.base")
    X_test, Y_test = load_dataset(ml100k / "ua.test")
    bucket = session.default_bucket()
    assert bucket == BUCKET

    def write_to_s3(X: Any, y: np.ndarray, key: str) -> str:
        buf = io.BytesIO()
        write_spmatrix_to_sparse_tensor(buf, X, y)
        buf.seek(0)
        boto3.resource("s3").Bucket(bucket).Object(key).upload_fileobj(buf)
        return f"s3://{bucket}/{key}"

    train = write_to_s3(X_train, Y_train, "fm-movielens/train/train.protobuf")
    test = write_to_s3(X_test, Y_test, "fm-movielens/test/test.protobuf")

    fm = sagemaker.estimator.Estimator(
        sagemaker.image_uris.retrieve("factorization-machines", REGION), ROLE,
        instance_count=1, instance_type="ml.c4.xlarge",
        output_path=f"s3://{bucket}/fm-movielens/output", sagemaker_session=session)
    fm.set_hyperparameters(feature_dim=N_FEATURES, predictor_type="binary_classifier",
                           mini_batch_size=1000, num_factors=64, epochs=100)
    fm.fit({"train": train.rsplit("/", 1)[0] + "/", "test": test.rsplit("/", 1)[0] + "/"})

    desc = session.sagemaker_client.describe_training_job(
        TrainingJobName=fm.latest_training_job.name)
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    # SageMaker's published result with these settings: accuracy 0.693
    assert metrics["test:binary_classification_accuracy"] > 0.66

    class FMSerializer(SimpleBaseSerializer):
        def serialize(self, data: Any) -> str:
            return fm_serializer(data)

    predictor = fm.deploy(initial_instance_count=1, instance_type="ml.c4.xlarge",
                          serializer=FMSerializer(content_type="application/json"),
                          deserializer=JSONDeserializer())
    try:
        answer = predictor.predict(X_test[1000:1200].toarray())
        labels = np.array([p["predicted_label"] for p in answer["predictions"]])
        assert len(labels) == 200
        assert (labels == Y_test[1000:1200]).mean() > 0.6
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()
