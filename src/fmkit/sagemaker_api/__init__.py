"""A local SageMaker: SageMaker's control-plane API, its runtime, CloudWatch Logs, S3 and
STS on one port, over fmkit's jobs, registry and files (``fmkit sagemaker-api``).

A SageMaker Python SDK notebook that trains the built-in Factorization Machines algorithm
runs unchanged against it once its session points there (docs/sagemaker-local.md):
``Estimator.fit`` trains with fmkit in the background and streams the log,
``deploy`` starts an ``fmkit serve`` process, ``predict`` reaches it through the runtime
API, tuning and batch transform run as fmkit jobs, and objects are files under
``FMKIT_HOME/s3``. Credentials are accepted and never checked.

>>> from fmkit.sagemaker_api import create_app
>>> app = create_app("/tmp/fmkit-home")     # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """Return the ASGI app; see :func:`fmkit.sagemaker_api.app.create_app`."""
    from fmkit.sagemaker_api.app import create_app as make

    return make(*args, **kwargs)


def serve(host: str = "127.0.0.1", port: int = 8787, *, home: str | None = None,
          log_level: str = "warning") -> None:
    """Serve the API with uvicorn until interrupted (binds ``host``, loopback by default)."""
    import uvicorn

    from fmkit.sagemaker_api.app import create_app as make

    uvicorn.run(make(home), host=host, port=port, log_level=log_level,
                timeout_keep_alive=30)
