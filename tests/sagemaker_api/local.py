"""Helpers of the local SageMaker tests: the server in a thread, the SDK's clock, tiny
recordIO-protobuf data sets and the notebook's estimator.

The SageMaker SDK sleeps in fixed steps while it polls (30 s before the first
DescribeEndpoint, 10 s between log reads, 30 s between DescribeTrainingJob calls during
``fit(logs=True)``); :class:`FakeClock` replaces ``sagemaker.session.time`` so that each of
those sleeps moves the SDK's clock forward at once and really waits only a moment.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REGION = "us-east-1"
ROLE = "arn:aws:iam::000000000000:role/local-sagemaker"
BUCKET = "fm-local"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalServer:
    """The API served by uvicorn in a thread of the test process."""

    def __init__(self, home: Path, port: int | None = None, **app_options: Any) -> None:
        import uvicorn

        from fmkit.sagemaker_api import create_app

        self.home = home
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(home, **app_options), host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LocalServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the local SageMaker server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def stop_endpoints(home: Path) -> None:
    from fmkit.jobs import endpoints
    from fmkit.registry import Registry

    registry = Registry(home)
    for record in registry.endpoints.list():
        try:
            endpoints.delete(record.name, timeout_s=10.0, registry=registry)
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass


class FakeClock:
    """``time`` for the SDK: ``sleep`` advances ``time()`` instead of waiting (0.1 s)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        self.offset += float(seconds)
        time.sleep(0.1)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def planted_data(n_rows: int = 240, n_users: int = 12, n_items: int = 16, seed: int = 0
                 ) -> tuple[Any, np.ndarray]:
    """One-hot user + item rows with a label that depends on both (binary)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n_rows)
    items = rng.integers(0, n_items, n_rows)
    rows = np.repeat(np.arange(n_rows), 2)
    cols = np.stack([users, n_users + items], 1).ravel()
    X = sp.csr_matrix((np.ones(2 * n_rows, np.float32), (rows, cols)),
                      shape=(n_rows, n_users + n_items))
    y = ((users % 2) == (items % 2)).astype(np.float32)
    return X, y


def recordio_bytes(X: Any, y: np.ndarray) -> bytes:
    from sagemaker.amazon.common import write_spmatrix_to_sparse_tensor

    buf = io.BytesIO()
    write_spmatrix_to_sparse_tensor(buf, X, y)
    return buf.getvalue()


def fm_estimator(session: Any, fm_data: dict[str, Any], **hyperparameters: Any) -> Any:
    import sagemaker

    image = sagemaker.image_uris.retrieve("factorization-machines", REGION)
    est = sagemaker.estimator.Estimator(
        image, ROLE, instance_count=1, instance_type="ml.c5.xlarge",
        output_path=f"s3://{BUCKET}/output", sagemaker_session=session)
    values = {"feature_dim": fm_data["feature_dim"], "predictor_type": "binary_classifier",
              "mini_batch_size": 50, "num_factors": 4, "epochs": 2}
    values.update(hyperparameters)
    est.set_hyperparameters(**values)
    return est
