"""The SageMaker-compatible model server: ``create_app`` and the ways to run it.

The app loads the model once per worker process, in its lifespan, before it answers any
request; a missing or corrupt model stops the worker with the loader's message, so
``/ping`` never reports ready for a bad model. Scoring is numpy only: importing and using
this module never imports torch. SIGTERM lets in-flight requests finish (up to 30 s), then
the process exits.

This is one of the three modules that read environment variables:

- ``SAGEMAKER_BIND_TO_PORT`` (default 8080), the container's port;
- ``SAGEMAKER_BATCH``, ``SAGEMAKER_MAX_PAYLOAD_IN_MB``: batch transform settings;
- ``FMKIT_MODEL_DIR``, ``FMKIT_MAX_PAYLOAD_BYTES``, ``FMKIT_ENDPOINT_NAME``,
  ``FMKIT_VOCABULARY``, ``FMKIT_MAX_USERS_PER_REQUEST``, ``FMKIT_MAX_K``: how
  ``serve --workers N`` hands its settings to each worker;
- ``FMKIT_SM_ROOT``: moves /opt/ml, as for the ``train`` entry (the model is its ``model/``).

The model directory may be an fmkit folder or a SageMaker model, local or ``s3://``
(:func:`fmkit.model_store.load_model`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmkit.errors import ArtifactError, ConfigError, FMError
from fmkit.serving import routes

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from fmkit.inference.predictor import Predictor

logger = logging.getLogger(__name__)

CONTAINER_MODEL_DIR = "/opt/ml/model"
GRACEFUL_SHUTDOWN_S = 30


@dataclass(frozen=True)
class ServeConfig:
    """Settings of one server; every worker gets the same."""

    model_dir: str | None = None
    max_payload_bytes: int = routes.DEFAULT_MAX_PAYLOAD_BYTES
    batch_mode: bool = False
    endpoint_name: str | None = None
    vocabulary: str | None = None
    #: most users one ``/recommend`` request may name (413 beyond)
    max_users_per_request: int = routes.DEFAULT_MAX_USERS_PER_REQUEST
    #: most items one ``/recommend`` answer may ask for; None: the model's number of items
    max_k: int | None = None

    def __post_init__(self) -> None:
        if self.max_users_per_request < 1:
            raise ConfigError("max_users_per_request must be an int >= 1; got "
                              f"{self.max_users_per_request}.")
        if self.max_k is not None and self.max_k < 1:
            raise ConfigError(f"max_k must be an int >= 1; got {self.max_k}.")

    def to_env(self) -> dict[str, str]:
        """Return the environment that :func:`config_from_env` reads back in a worker."""
        env = {"FMKIT_MAX_PAYLOAD_BYTES": str(self.max_payload_bytes),
               "SAGEMAKER_BATCH": "true" if self.batch_mode else "false",
               "FMKIT_MAX_USERS_PER_REQUEST": str(self.max_users_per_request)}
        if self.max_k is not None:
            env["FMKIT_MAX_K"] = str(self.max_k)
        if self.model_dir:
            env["FMKIT_MODEL_DIR"] = self.model_dir
        if self.endpoint_name:
            env["FMKIT_ENDPOINT_NAME"] = self.endpoint_name
        if self.vocabulary:
            env["FMKIT_VOCABULARY"] = self.vocabulary
        return env


def config_from_env(model_dir: str | None = None) -> ServeConfig:
    """Read the server settings from the environment (see the module docstring)."""
    env = os.environ
    limit = routes.DEFAULT_MAX_PAYLOAD_BYTES
    try:
        if env.get("FMKIT_MAX_PAYLOAD_BYTES"):
            limit = int(env["FMKIT_MAX_PAYLOAD_BYTES"])
        elif env.get("SAGEMAKER_MAX_PAYLOAD_IN_MB"):
            limit = int(float(env["SAGEMAKER_MAX_PAYLOAD_IN_MB"]) * 1024 * 1024)
    except ValueError:
        raise ConfigError("SAGEMAKER_MAX_PAYLOAD_IN_MB / FMKIT_MAX_PAYLOAD_BYTES must be "
                          "numbers.") from None
    return ServeConfig(
        model_dir=model_dir or env.get("FMKIT_MODEL_DIR") or (
            os.path.join(env["FMKIT_SM_ROOT"], "model") if env.get("FMKIT_SM_ROOT")
            else CONTAINER_MODEL_DIR),
        max_payload_bytes=limit,
        batch_mode=env.get("SAGEMAKER_BATCH", "").strip().lower() in ("true", "1"),
        endpoint_name=env.get("FMKIT_ENDPOINT_NAME") or None,
        vocabulary=env.get("FMKIT_VOCABULARY") or None,
        max_users_per_request=_env_int("FMKIT_MAX_USERS_PER_REQUEST",
                                       routes.DEFAULT_MAX_USERS_PER_REQUEST),
        max_k=_env_int("FMKIT_MAX_K", None),
    )


def config_from_args(args: Any) -> ServeConfig:
    """Return the settings given as ``python -m fmkit.serving`` options (an argparse
    namespace with ``model_dir``, ``max_payload_mb``, ``batch``, ``name``, ``vocabulary``,
    ``max_users_per_request`` and ``max_k``; None keeps a default)."""
    if args.max_payload_mb is not None and args.max_payload_mb <= 0:
        raise ConfigError(f"--max-payload-mb must be > 0; got {args.max_payload_mb:g}.")
    max_users = args.max_users_per_request
    max_k = args.max_k
    if max_users is not None and max_users < 1:
        raise ConfigError(f"--max-users-per-request must be an int >= 1; got {max_users}.")
    if max_k is not None and max_k < 1:
        raise ConfigError(f"--max-k must be an int >= 1; got {max_k}.")
    if args.name is not None:
        from fmkit.registry.records import check_name

        check_name(args.name, what="endpoint")
    return ServeConfig(
        model_dir=args.model_dir,
        max_payload_bytes=(int(args.max_payload_mb * 1024 * 1024)
                           if args.max_payload_mb is not None
                           else routes.DEFAULT_MAX_PAYLOAD_BYTES),
        batch_mode=bool(args.batch),
        endpoint_name=args.name,
        vocabulary=args.vocabulary,
        max_users_per_request=(routes.DEFAULT_MAX_USERS_PER_REQUEST if max_users is None
                               else max_users),
        max_k=max_k,
    )


def _env_int(name: str, default: int | None) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name} must be an integer; got {text!r}.") from None


def load_predictor(model_dir: str | os.PathLike[str], *,
                   vocabulary: str | os.PathLike[str] | None = None) -> Predictor:
    """Load the model to serve; raise ArtifactError with a clear message if it cannot.

    ``model_dir`` is an fmkit folder or a SageMaker model, a local path or an ``s3://`` URI
    (:func:`fmkit.model_store.load_model`).

    ``vocabulary`` attaches a vocabulary.json to a model that has none (a SageMaker model),
    so that ``/recommend`` can speak in raw ids.
    """
    from fmkit.inference.predictor import Predictor
    from fmkit.io import paths
    from fmkit.model_store import load_model

    text = os.fspath(model_dir)
    if not paths.is_remote(text) and not Path(paths.local_path(text)).exists():
        raise ArtifactError(f"model directory {text} does not exist; pass --model-dir with a "
                            "folder written by fmkit train, or one holding model.tar.gz.")
    return Predictor(load_model(text, vocabulary=vocabulary))


def create_app(
    model_dir: str | os.PathLike[str] | None = None,
    *,
    predictor: Predictor | None = None,
    config: ServeConfig | None = None,
) -> Starlette:
    """Return the ASGI app serving one model.

    Parameters
    ----------
    model_dir : path-like, optional
        The model to load in the lifespan (fmkit folder, model.tar.gz or model_algo-1;
        local or ``s3://``).
    predictor : Predictor, optional
        An already loaded model (then ``model_dir`` is not read).
    config : ServeConfig, optional
        Payload limit, batch mode, endpoint name, request limits of ``/recommend``;
        ``model_dir`` overrides its model_dir.

    Raises
    ------
    FMError
        When used: starlette is missing ("pip install 'fmkit[serve]'").
    """
    try:
        from starlette.applications import Starlette
        from starlette.exceptions import HTTPException
        from starlette.middleware import Middleware
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route
    except ImportError:
        raise FMError("serving needs the 'serve' extra: pip install 'fmkit[serve]'") from None

    config = config or ServeConfig()
    if model_dir is not None:
        config = dataclasses.replace(config, model_dir=str(model_dir))
    state = routes.ServerState(
        max_payload_bytes=config.max_payload_bytes,
        batch_mode=config.batch_mode,
        endpoint_names=(config.endpoint_name,) if config.endpoint_name else (),
        model_dir=config.model_dir,
        max_users_per_request=config.max_users_per_request,
        max_k=config.max_k,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if predictor is not None:
            state.predictor = predictor
        elif config.model_dir is not None:
            state.predictor = load_predictor(config.model_dir, vocabulary=config.vocabulary)
            logger.info("loaded model %s (feature_dim=%d)", config.model_dir,
                        state.predictor.feature_dim)
        if state.predictor is not None and state.predictor.artifact.vocabulary is not None:
            try:
                state.require_recommender()
            except FMError as exc:  # scoring works without it; /recommend will say why
                logger.warning("recommendations unavailable: %s", exc)
        yield

    async def on_error(request: Request, exc: Exception) -> Response:
        return routes.error_response(request, exc)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"message": exc.detail}, status_code=exc.status_code)

    invocations = routes.InvocationsApp(state)
    app = Starlette(
        routes=[
            Route("/ping", routes.ping, methods=["GET"]),
            Route("/invocations", invocations, methods=["POST"]),
            Route("/endpoints/{name}/invocations", routes.endpoint_invocations,
                  methods=["POST"]),
            Route("/execution-parameters", routes.execution_parameters, methods=["GET"]),
            Route("/recommend", routes.recommend, methods=["POST"]),
            Route("/similar", routes.similar, methods=["POST"]),
            Route("/stats", routes.stats, methods=["GET"]),
        ],
        exception_handlers={HTTPException: on_http, FMError: on_error, Exception: on_error},
        middleware=[Middleware(routes.FastPathMiddleware, handler=invocations)],
        lifespan=lifespan,
    )
    app.state.fmkit = state
    return app


def app_from_env() -> Starlette:
    """Build the app from the environment: the factory each ``--workers`` process calls."""
    return create_app(config=config_from_env())


def run(
    config: ServeConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    log_level: str = "info",
) -> None:
    """Check the model, then serve it with uvicorn until SIGTERM/SIGINT (which drain).

    The model is loaded here first, so a missing or corrupt one fails before the port
    opens, with the loader's message.
    """
    try:
        import uvicorn
    except ImportError:
        raise FMError("serving needs the 'serve' extra: pip install 'fmkit[serve]'") from None
    if config.model_dir is None:
        raise ConfigError("no model directory given; pass --model-dir.")
    if workers < 1:
        raise ConfigError(f"workers must be an int >= 1; got {workers}.")
    predictor = load_predictor(config.model_dir, vocabulary=config.vocabulary)
    options: dict[str, Any] = dict(
        host=host, port=port, log_level=log_level, access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, lifespan="on",
    )
    for name, module in (("loop", "uvloop"), ("http", "httptools")):
        try:
            __import__(module)
            options[name] = module
        except ImportError:
            pass
    if workers == 1:
        uvicorn.run(create_app(predictor=predictor, config=config), **options)
        return
    del predictor  # each worker loads its own copy
    os.environ.update(config.to_env())
    uvicorn.run("fmkit.serving.app:app_from_env", factory=True, workers=workers, **options)


def container_main(argv: Sequence[str] | None = None) -> None:
    """The SageMaker container's ``serve`` entry: model from /opt/ml/model, port 8080.

    ``docker run IMAGE serve`` runs this; it serves on 0.0.0.0:$SAGEMAKER_BIND_TO_PORT (8080
    when unset) with one worker per CPU up to ``SAGEMAKER_MAX_CONCURRENT_TRANSFORMS``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "serve":
        args = args[1:]
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        config = config_from_env(args[0] if args else None)
        port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
        workers = int(os.environ.get("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS")
                      or os.environ.get("FMKIT_WORKERS") or (os.cpu_count() or 1))
        run(config, host="0.0.0.0", port=port, workers=max(1, workers))
    except (FMError, ValueError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
