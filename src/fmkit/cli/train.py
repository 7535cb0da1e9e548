"""``fmkit prepare movielens``, ``fmkit train`` and ``fmkit evaluate``.

Every hyperparameter is a flag named after it (``--num-factors 64`` or
``--num_factors=64``); ``--hyperparameters FILE`` reads SageMaker's hyperparameters.json
(all values strings) and switches the defaults to SageMaker's unless ``--defaults`` says
otherwise. Flags override the file.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import typer

from fmkit.errors import ConfigError

HP_HELP = (
    "Hyperparameters are flags named after SageMaker's names: --num-factors 64 "
    "--predictor-type binary_classifier --epochs 20 --mini-batch-size 256 --factors-lr 0.01 ... "
    "(see docs/hyperparameters.md)."
)


def register(app: typer.Typer) -> None:
    prepare_app = typer.Typer(help="Prepare data sets as FM rows.", no_args_is_help=True)
    app.add_typer(prepare_app, name="prepare")

    @prepare_app.command("movielens")
    def prepare_movielens(
        output: str = typer.Option(..., "--output", "-o", help="Output folder: train/, test/, "
                                   "vocabulary.json."),
        data_dir: str | None = typer.Option(
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
        test: str | None = typer.Option(None, "--test", help="Test channel, scored once "
                                           "after training."),
        validation: str | None = typer.Option(None, "--validation", help="Validation "
                                                 "channel, scored every epoch (early stopping)."),
        hyperparameters: Path | None = typer.Option(
            None, "--hyperparameters", help="SageMaker hyperparameters.json (strings)."),
        defaults: str | None = typer.Option(
            None, "--defaults", help="sagemaker|fmkit (default: sagemaker with "
                                     "--hyperparameters, else fmkit)."),
        content_type: str | None = typer.Option(None, "--content-type",
                                                   help="Format of the channels when the "
                                                        "extension does not say."),
        init_model: str | None = typer.Option(None, "--init-model", help="Warm start from "
                                                 "this model folder."),
        vocabulary: str | None = typer.Option(None, "--vocabulary", help="vocabulary.json "
                                                 "(default: next to the train channel)."),
        groups: str | None = typer.Option(None, "--groups", help="Field groups for "
                                             "--solver mcmc (see docs/bayesian.md)."),
        sample_weight: Path | None = typer.Option(
            None, "--sample-weight", help="Text file: one weight per training row."),
        stream: bool = typer.Option(False, "--stream", help="Read channels in a stream "
                                    "(constant memory) instead of loading them."),
        max_run_seconds: float | None = typer.Option(
            None, "--max-run-seconds", help="Stop after this long, keeping the model reached."),
        name: str | None = typer.Option(None, "--name", help="Job name in the registry."),
        progress: bool = typer.Option(sys.stderr.isatty(), "--progress/--no-progress"),
        instance_count: int = typer.Option(
            1, "--instance-count", help="Train with this many local worker processes "
            "(torch.distributed: gloo on CPU, NCCL on CUDA); see docs/distributed.md."),
        distribution: str = typer.Option(
            "FullyReplicated", "--distribution", help="How workers share a channel: "
            "FullyReplicated (row ranges) or ShardedByS3Key (whole files)."),
        detach: bool = typer.Option(
            False, "--detach", help="Run the job in a background process and return at once; "
            "follow it with fmkit jobs describe NAME."),
        worker_timeout: float = typer.Option(
            300.0, "--worker-timeout", help="Seconds a worker waits for its peers before the "
            "job fails (multi-process only)."),
    ) -> None:
        """Train an FM; write the model and metrics.json (SageMaker metric names)."""
        from fmkit.jobs import training
        from fmkit.jobs.hyperparameters import hyperparameter_values

        values, chosen = hyperparameter_values(hyperparameters, list(ctx.args), defaults)
        request = training.TrainingRequest(
            channels={"train": train, "test": test, "validation": validation},
            model_dir=model_dir, hyperparameters=values, defaults=chosen, name=name,
            content_type=content_type, vocabulary=vocabulary, init_model=init_model,
            groups=groups, sample_weight=str(sample_weight) if sample_weight else None,
            stream=stream, max_run_seconds=max_run_seconds, instance_count=instance_count,
            distribution=distribution, worker_timeout_s=worker_timeout, progress=progress,
            source="cli")
        if detach:
            job = training.start(request)
            print(json.dumps({"job_name": job.name, "status": job.status,
                              "secondary_status": job.secondary_status,
                              "model_dir": model_dir}, indent=2))
            return
        started = time.time()
        job = training.run(request, environ=os.environ)
        if job is None:  # a torchrun rank other than 0: rank 0 prints the summary
            return
        summary = {"job_name": job.name, "status": job.status, "model_dir": model_dir,
                   "seconds": round(time.time() - started, 3), **job.final_metrics}
        if job.failure_reason:
            summary["stop_reason"] = job.failure_reason
        print(json.dumps(summary, indent=2))
        if job.status == "Stopped" and "Ctrl-C" in (job.failure_reason or ""):
            raise typer.Exit(130)

    @app.command("evaluate")
    def evaluate(
        model_dir: str = typer.Option(..., "--model-dir", help="fmkit model folder or "
                                      "SageMaker model.tar.gz."),
        test: str = typer.Option(..., "--test", help="Labelled channel to score."),
        content_type: str | None = typer.Option(None, "--content-type"),
        ranking_k: int | None = typer.Option(None, "--ranking-k", help="Also report "
                                                "precision/recall/NDCG/MAP@k over test users."),
    ) -> None:
        """Score a labelled channel and print SageMaker-named metrics as JSON."""
        from fmkit.jobs.evaluation import evaluate_model

        print(json.dumps(evaluate_model(model_dir, test, content_type=content_type,
                                        ranking_k=ranking_k), indent=2))
