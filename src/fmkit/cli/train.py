"""``fmkit prepare movielens``, ``fmkit train`` and ``fmkit evaluate``.

Every hyperparameter is a flag named after it (``--num-factors 64`` or
``--num_factors=64``); ``--hyperparameters FILE`` reads SageMaker's hyperparameters.json
(all values strings) and switches the defaults to SageMaker's unless ``--defaults`` says
otherwise. Flags override the file.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import typer

from fmkit.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

HP_HELP = (
    "Hyperparameters are flags named after SageMaker's names: --num-factors 64 "
    "--predictor-type binary_classifier --epochs 20 --mini-batch-size 256 --factors-lr 0.01 ... "
    "(see docs/hyperparameters.md)."
)


def parse_hyperparameter_args(args: list[str]) -> dict[str, str]:
    """Turn ``--name value`` / ``--name=value`` pairs into {sagemaker_name: value}.

    Raises
    ------
    ConfigError
        An argument is not a known hyperparameter flag or has no value.
    """
    from fmkit.config import HYPERPARAMETERS

    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}; hyperparameters are given as "
                              "--name value.")
        name, eq, value = arg[2:].partition("=")
        key = name.replace("-", "_")
        if key not in HYPERPARAMETERS:
            known = ", ".join("--" + k.replace("_", "-") for k in HYPERPARAMETERS)
            raise ConfigError(f"unknown option or hyperparameter {arg.split('=')[0]!r}; "
                              f"hyperparameters: {known}.")
        if not eq:
            if i + 1 >= len(args):
                raise ConfigError(f"{arg} needs a value.")
            i += 1
            value = args[i]
        out[key] = value
        i += 1
    return out


def read_hyperparameters_file(path: Path) -> dict[str, Any]:
    """Read a SageMaker hyperparameters.json (a flat object of strings)."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"--hyperparameters {path}: cannot read: {exc.strerror or exc}.") from None
    except ValueError as exc:
        raise ConfigError(f"--hyperparameters {path}: not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--hyperparameters {path}: expected a JSON object of "
                          "name -> value strings.")
    return data


def hyperparameter_values(hyperparameters: Optional[Path], args: list[str],
                          defaults: Optional[str]) -> tuple[dict[str, Any], str]:
    """Merge ``--hyperparameters FILE`` and the ``--name value`` flags (flags win); return
    them with the defaults to apply: ``defaults``, else 'sagemaker' with a file, else 'fmkit'."""
    values: dict[str, Any] = {}
    if hyperparameters is not None:
        values.update(read_hyperparameters_file(hyperparameters))
    values.update(parse_hyperparameter_args(args))
    chosen = defaults or ("sagemaker" if hyperparameters is not None else "fmkit")
    if chosen not in ("sagemaker", "fmkit"):
        raise ConfigError(f"--defaults must be 'sagemaker' or 'fmkit'; got {chosen!r}.")
    return values, chosen


def _find_vocabulary(explicit: Optional[str], train: str) -> Any:
    from fmkit.features.vocabulary import FILENAME, Vocabulary

    if explicit:
        return Vocabulary.load(explicit)
    if "://" in train:
        return None
    p = Path(train)
    for candidate in (p / FILENAME, p.parent / FILENAME):
        if candidate.is_file():
            logger.info("using vocabulary %s", candidate)
            return Vocabulary.load(candidate)
    return None


def _read_channel(path: str, content_type: Optional[str], name: str, *, stream: bool,
                  feature_dim: Optional[int], rank: int = 0, world_size: int = 1,
                  distribution: str = "FullyReplicated") -> Any:
    """Read a channel, or this process's shard of it when ``world_size`` > 1.

    ShardedByS3Key gives process r every world_size-th file; FullyReplicated gives it a
    contiguous row range (in memory) or every world_size-th batch (streamed).
    """
    import fmkit.io as fio
    from fmkit.sparse import concat

    if stream:
        return StreamedChannel(path, content_type, feature_dim, rank=rank,
                               world_size=world_size, distribution=distribution)
    if world_size > 1 and distribution == "ShardedByS3Key":
        parts = list(fio.iter_channel(path, content_type=content_type, rank=rank,
                                      world_size=world_size, distribution=distribution,
                                      require_labels=True))
        batch = concat(parts) if parts else None
        if batch is None or batch.n_rows == 0:
            raise DataError(f"the {name} channel {path} has no rows in the files of worker "
                            f"{rank} of {world_size}.")
        return batch
    batch = fio.read(path, content_type=content_type, require_labels=True)
    if batch.n_rows == 0:
        raise DataError(f"the {name} channel {path} has no rows.")
    if world_size > 1:
        start, stop = fio.row_range(batch.n_rows, rank=rank, world_size=world_size)
        batch = batch.slice(start, stop)
    return batch


class StreamedChannel:
    """A channel read in a stream on every pass (constant memory).

    With ``world_size`` > 1 it yields only this process's share: its files
    (ShardedByS3Key) or every ``world_size``-th batch starting at ``rank``
    (FullyReplicated).
    """

    def __init__(self, uri: str, content_type: Optional[str], feature_dim: Optional[int], *,
                 rank: int = 0, world_size: int = 1,
                 distribution: str = "FullyReplicated") -> None:
        import fmkit.io as fio

        self.uri = uri
        self.content_type = content_type
        self.feature_dim = feature_dim
        self.rank, self.world_size, self.distribution = rank, world_size, distribution
        self.n_rows = None
        # libsvm's key base is guessed by a scan of the channel: do it once, not every pass
        files = fio.list_files(uri)
        formats = [fio.file_format(f, None, content_type) for f in files]
        self.zero_based = fio.libsvm_zero_based(files, formats, None)
        if feature_dim is None:
            first = next(iter(fio.iter_batches(uri, 1, content_type=content_type,
                                               zero_based=self.zero_based)), None)
            if first is None:
                raise DataError(f"{uri}: the channel has no rows.")
            self.feature_dim = first.feature_dim

    def iter_batches(self, batch_size: int) -> Any:
        import fmkit.io as fio

        by_file = self.world_size > 1 and self.distribution == "ShardedByS3Key"
        batches = fio.iter_batches(self.uri, batch_size, content_type=self.content_type,
                                   require_labels=True, zero_based=self.zero_based,
                                   rank=self.rank if by_file else 0,
                                   world_size=self.world_size if by_file else 1,
                                   distribution=self.distribution if by_file
                                   else "FullyReplicated")
        if self.world_size == 1 or by_file:
            return batches
        return (b for i, b in enumerate(batches) if i % self.world_size == self.rank)


def _write_json_atomic(path: Path, data: Any) -> None:
    from fmkit.io import paths

    with paths.atomic_write(str(path)) as f:
        f.write(json.dumps(data, indent=2).encode())


def save_model(result: Any, model_dir: str) -> None:
    """Save the artifact and metrics.json to a local folder or an s3:// prefix, atomically."""
    from fmkit.artifact import save

    if "://" in model_dir:
        from fmkit.io import paths

        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "model"
            save(result.artifact, local)
            _write_json_atomic(local / "metrics.json", result.metrics)
            paths.upload_dir(str(local), model_dir)
        return
    target = Path(model_dir)
    save(result.artifact, target)
    _write_json_atomic(target / "metrics.json", result.metrics)


def register(app: typer.Typer) -> None:
    prepare_app = typer.Typer(help="Prepare data sets as FM rows.", no_args_is_help=True)
    app.add_typer(prepare_app, name="prepare")

    @prepare_app.command("movielens")
    def prepare_movielens(
        output: str = typer.Option(..., "--output", "-o", help="Output folder: train/, test/, "
                                   "vocabulary.json."),
        data_dir: Optional[str] = typer.Option(
            None, "--data-dir", envvar="FMKIT_DATA_DIR",
            help="MovieLens folder or zip (ml-100k or ml-1m); downloaded from GroupLens when "
                 "absent."),
        split: str = typer.Option("ua", help="ua|ub|u1..u5 (ml-100k files) or random."),
        target: str = typer.Option("binary", help="binary (rating >= threshold) or rating."),
        threshold: float = typer.Option(4.0, help="Rating at or above which the label is 1."),
        side_features: bool = typer.Option(False, "--side-features", help="Add age bucket, "
                                           "gender, occupation and genres."),
        implicit: bool = typer.Option(
            False, "--implicit", help="Add implicit feedback from the training ratings: the "
            "user's rated movies, the movie's raters, and how many (docs/movielens.md)."),
        format: str = typer.Option("recordio-protobuf", "--format",
                                   help="recordio-protobuf|libsvm|csv|npz"),
        seed: int = typer.Option(0, help="Seed of the random split."),
    ) -> None:
        """Encode MovieLens as SageMaker's notebook does and write train/test channels."""
        import fmkit.io as fio
        from fmkit.datasets.movielens import load_movielens, resolve_data_dir
        from fmkit.registry.home import fmkit_home

        src = resolve_data_dir(data_dir, fmkit_home() / "datasets")
        data = load_movielens(src, split=split, target=target, threshold=threshold,
                              side_features=side_features, implicit=implicit, seed=seed)
        ext = {"recordio-protobuf": "recordio", "libsvm": "libsvm", "csv": "csv",
               "npz": "npz"}.get(format)
        if ext is None:
            raise ConfigError(f"--format must be recordio-protobuf, libsvm, csv or npz; got "
                              f"{format!r}.")
        out = Path(output)
        for name, batch in (("train", data.train), ("test", data.test)):
            (out / name).mkdir(parents=True, exist_ok=True)
            fio.write(str(out / name / f"{name}.{ext}"), batch, format=format)
        data.vocabulary.save(out / "vocabulary.json")
        summary = {
            "train": str(out / "train"), "test": str(out / "test"),
            "vocabulary": str(out / "vocabulary.json"),
            "train_rows": data.train.n_rows, "test_rows": data.test.n_rows,
            "feature_dim": data.vocabulary.feature_dim, "format": format,
        }
        print(json.dumps(summary, indent=2))

    @app.command(
        "train",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        epilog=HP_HELP,
    )
    def train(
        ctx: typer.Context,
        train: str = typer.Option(..., "--train", help="Train channel: file, folder, glob or "
                                  "s3:// prefix."),
        model_dir: str = typer.Option(..., "--model-dir", help="Where the model and "
                                      "metrics.json go (folder or s3:// prefix)."),
        test: Optional[str] = typer.Option(None, "--test", help="Test channel, scored once "
                                           "after training."),
        validation: Optional[str] = typer.Option(None, "--validation", help="Validation "
                                                 "channel, scored every epoch (early stopping)."),
        hyperparameters: Optional[Path] = typer.Option(
            None, "--hyperparameters", help="SageMaker hyperparameters.json (strings)."),
        defaults: Optional[str] = typer.Option(
            None, "--defaults", help="sagemaker|fmkit (default: sagemaker with "
                                     "--hyperparameters, else fmkit)."),
        content_type: Optional[str] = typer.Option(None, "--content-type",
                                                   help="Format of the channels when the "
                                                        "extension does not say."),
        init_model: Optional[str] = typer.Option(None, "--init-model", help="Warm start from "
                                                 "this model folder."),
        vocabulary: Optional[str] = typer.Option(None, "--vocabulary", help="vocabulary.json "
                                                 "(default: next to the train channel)."),
        groups: Optional[str] = typer.Option(None, "--groups", help="Field groups for "
                                             "--solver mcmc (see docs/bayesian.md)."),
        sample_weight: Optional[Path] = typer.Option(
            None, "--sample-weight", help="Text file: one weight per training row."),
        stream: bool = typer.Option(False, "--stream", help="Read channels in a stream "
                                    "(constant memory) instead of loading them."),
        max_run_seconds: Optional[float] = typer.Option(
            None, "--max-run-seconds", help="Stop after this long, keeping the model reached."),
        name: Optional[str] = typer.Option(None, "--name", help="Job name in the registry."),
        progress: bool = typer.Option(sys.stderr.isatty(), "--progress/--no-progress"),
        instance_count: int = typer.Option(
            1, "--instance-count", help="Train with this many local worker processes "
            "(torch.distributed: gloo on CPU, NCCL on CUDA); see docs/distributed.md."),
        distribution: str = typer.Option(
            "FullyReplicated", "--distribution", help="How workers share a channel: "
            "FullyReplicated (row ranges) or ShardedByS3Key (whole files)."),
        worker_timeout: float = typer.Option(
            300.0, "--worker-timeout", help="Seconds a worker waits for its peers before the "
            "job fails (multi-process only)."),
    ) -> None:
        """Train an FM; write the model and metrics.json (SageMaker metric names)."""
        from fmkit.config import FMConfig

        values, chosen = hyperparameter_values(hyperparameters, list(ctx.args), defaults)
        config = FMConfig.from_values(values, defaults=chosen)  # type: ignore[arg-type]
        options = dict(
            train=train, test=test, validation=validation, model_dir=model_dir,
            content_type=content_type, init_model=init_model, vocabulary=vocabulary,
            groups=groups, sample_weight=sample_weight, stream=stream,
            max_run_seconds=max_run_seconds, name=name, progress=progress,
            channels={"train": train, "test": test, "validation": validation},
            distribution=distribution,
        )
        run_distributed(config, options, instance_count=instance_count,
                        environ=os.environ, timeout_s=worker_timeout)

    @app.command("evaluate")
    def evaluate(
        model_dir: str = typer.Option(..., "--model-dir", help="fmkit model folder or "
                                      "SageMaker model.tar.gz."),
        test: str = typer.Option(..., "--test", help="Labelled channel to score."),
        content_type: Optional[str] = typer.Option(None, "--content-type"),
        ranking_k: Optional[int] = typer.Option(None, "--ranking-k", help="Also report "
                                                "precision/recall/NDCG/MAP@k over test users."),
    ) -> None:
        """Score a labelled channel and print SageMaker-named metrics as JSON."""
        print(json.dumps(evaluate_model(model_dir, test, content_type=content_type,
                                        ranking_k=ranking_k), indent=2))


def evaluate_model(model_dir: str, test: str, *, content_type: Optional[str] = None,
                   ranking_k: Optional[int] = None) -> dict[str, float]:
    """Return test metrics of the model at ``model_dir`` on the channel ``test``."""
    import fmkit.io as fio
    from fmkit import metrics as M
    from fmkit.inference.predictor import Predictor

    predictor = Predictor.load(_local_model(model_dir))
    batch = fio.read(test, content_type=content_type, require_labels=True)
    if batch.n_rows == 0:
        raise DataError(f"the test channel {test} has no rows.")
    batch.validate(feature_dim=predictor.feature_dim, predictor_type=predictor.predictor_type,
                   require_labels=True, source=test)
    scores = predictor.predict_scores(batch.with_feature_dim(predictor.feature_dim))
    out = M.compute_metrics(predictor.predictor_type, batch.labels, scores, weights=batch.weights)
    if ranking_k:
        from fmkit.inference.ranking import ranking_metrics

        out.update(ranking_metrics(predictor, batch, k=ranking_k))
    return out


def _local_model(model_dir: str) -> str:
    if "://" not in model_dir:
        return model_dir
    from fmkit.io import paths

    tmp = tempfile.mkdtemp(prefix="fmkit-model-")
    paths.download_dir(model_dir, tmp)
    return tmp


def run_distributed(config: Any, options: dict[str, Any], *, instance_count: int = 1,
                    environ: Optional[Any] = None, timeout_s: float = 300.0) -> Any:
    """Run :func:`run_training` in one process, under torchrun, or in N local workers.

    Under torchrun (``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT`` in
    ``environ``) this process joins that group; with ``instance_count`` > 1 it starts
    that many local workers (:func:`fmkit.distributed.launch.launch`); otherwise it
    trains here. Rank 0 writes the model.
    """
    from fmkit.distributed.launch import torchrun_env

    distribution = options.get("distribution", "FullyReplicated")
    if distribution not in ("FullyReplicated", "ShardedByS3Key"):
        raise ConfigError(f"--distribution must be FullyReplicated or ShardedByS3Key; got "
                          f"{distribution!r}.")
    if instance_count < 1:
        raise ConfigError(f"--instance-count must be >= 1; got {instance_count}.")
    rdzv = torchrun_env(environ or {})
    if rdzv is not None and rdzv.world_size > 1:
        if instance_count != 1:
            raise ConfigError("--instance-count cannot be used under torchrun; torchrun "
                              "starts the processes (--nproc-per-node, --nnodes).")
        from fmkit.distributed import launch as L

        if rdzv.rank > 0:  # rank 0 logs for the job; the others only warn
            log = logging.getLogger("fmkit")
            log.setLevel(max(log.getEffectiveLevel(), logging.WARNING))
        L.init_process_group(rdzv, backend=L.default_backend(config.device),
                             timeout_s=timeout_s)
        try:
            return _train_worker(config, options)
        finally:
            L.shutdown_process_group()
    if instance_count == 1:
        return run_training(config, **options)
    if config.solver != "sgd":
        raise ConfigError(f"--instance-count > 1 needs solver='sgd'; got {config.solver!r}.")
    from fmkit.distributed.launch import default_backend, launch

    backend = default_backend(config.device)
    if backend == "nccl":
        import torch

        if instance_count > torch.cuda.device_count():
            raise ConfigError(f"--instance-count {instance_count} with device cuda needs one GPU "
                              f"per worker; this machine has {torch.cuda.device_count()}. Use "
                              "fewer workers or --device cpu.")
    printed = launch(_train_worker, (config, options, True), nprocs=instance_count,
                     backend=backend, timeout_s=timeout_s,
                     log_level=logging.getLogger("fmkit").getEffectiveLevel())
    if printed:
        sys.stdout.write(printed)
    return None


def _train_worker(config: Any, options: dict[str, Any], capture: bool = False) -> str | None:
    """One process of a multi-process job (the process group is already initialised).

    With ``capture``, rank 0's summary is returned instead of printed, for the launching
    process to print on its own stdout.
    """
    import contextlib
    import io

    from fmkit.distributed.strategy import DistributedStrategy

    out = io.StringIO()
    with contextlib.redirect_stdout(out) if capture else contextlib.nullcontext():
        run_training(config, **options, strategy=DistributedStrategy())
    return out.getvalue() if capture else None


def run_training(config: Any, *, train: str, model_dir: str, test: Optional[str] = None,
                 validation: Optional[str] = None, content_type: Optional[str] = None,
                 init_model: Optional[str] = None, vocabulary: Optional[str] = None,
                 groups: Optional[str] = None, sample_weight: Optional[Path] = None,
                 stream: bool = False, max_run_seconds: Optional[float] = None,
                 name: Optional[str] = None, progress: bool = False,
                 channels: Optional[dict[str, Any]] = None, strategy: Any = None,
                 callbacks: Optional[list[Any]] = None,
                 distribution: str = "FullyReplicated") -> Any:
    """Read the channels, train, save and record the job; shared by ``fmkit train``, the
    workers of a multi-process job and the container entry.

    Rank 0 records the job in the registry (``fmkit jobs``: InProgress, then Completed,
    Stopped or Failed with the reason; ``fmkit jobs stop NAME`` stops it after the epoch),
    registers the model under the job's name and prints a JSON summary. With a
    multi-process ``strategy`` each process reads its shard of every channel
    (``distribution``: FullyReplicated row ranges or ShardedByS3Key files).
    """
    import contextlib

    import numpy as np

    from fmkit.artifact import load
    from fmkit.engine.trainer import fit

    started = time.time()
    main = strategy is None or strategy.is_main
    registry = None
    tracking: Any = contextlib.nullcontext(None)
    if main:
        from fmkit.registry import Registry

        registry = Registry()
        channels = channels or {"train": train, "test": test, "validation": validation}
        tracking = registry.track_training_job(
            name, hyperparameters=config.to_dict(),
            channels={k: v for k, v in channels.items() if v}, model_dir=model_dir)
    with tracking as job:
        fd = config.feature_dim
        world = 1 if strategy is None else strategy.world_size
        shard = dict(rank=0 if strategy is None else strategy.rank, world_size=world,
                     distribution=distribution)
        train_data = _read_channel(train, content_type, "train", stream=stream,
                                   feature_dim=fd, **shard)
        test_data = (None if test is None else
                     _read_channel(test, content_type, "test", stream=stream, feature_dim=fd,
                                   **shard))
        val_data = (None if validation is None else
                    _read_channel(validation, content_type, "validation", stream=stream,
                                  feature_dim=fd, **shard))
        if sample_weight is not None:
            if stream:
                raise ConfigError("--sample-weight needs the train channel in memory; drop "
                                  "--stream.")
            if world > 1:
                raise ConfigError("--sample-weight is not supported with several processes "
                                  "yet.")
            try:
                weights = np.loadtxt(sample_weight, dtype=np.float32, ndmin=1)
            except (OSError, ValueError) as exc:
                raise DataError(f"--sample-weight {sample_weight}: {exc}") from None
            train_data = train_data.with_weights(weights)
        vocab = _find_vocabulary(vocabulary, train)
        group_ids = None
        if groups is not None:
            from fmkit.bayes import read_groups

            group_ids = read_groups(groups)
        init = load(_local_model(init_model)) if init_model else None
        callbacks = list(callbacks or [])
        if job is not None:
            from fmkit.registry import RegistryCallback

            callbacks.append(RegistryCallback(job))
        result = fit(config, train_data, test=test_data, validation=val_data, vocabulary=vocab,
                     init=init, max_run_seconds=max_run_seconds, progress=progress,
                     groups=group_ids, strategy=strategy, callbacks=callbacks)
        if not main:
            return result
        save_model(result, model_dir)
        job.complete(metrics=result.metrics, artifact=model_dir, status=result.status,
                     best_epoch=result.best_epoch,
                     failure_reason=result.stop_reason if result.status != "Completed" else None)
    registry.register_model(job.name, model_dir, job_name=job.name, metrics=result.metrics,
                            predictor_type=config.predictor_type, replace=True)
    summary = {"job_name": job.name, "status": result.status, "model_dir": model_dir,
               "seconds": round(time.time() - started, 3), **result.metrics}
    if result.stop_reason:
        summary["stop_reason"] = result.stop_reason
    print(json.dumps(summary, indent=2))
    if result.stop_reason and "Ctrl-C" in result.stop_reason:
        raise typer.Exit(130)
    return result
