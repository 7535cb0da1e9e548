"""``fmkit tune``: a hyperparameter tuning job over the train/test channels.

Fixed hyperparameters are flags named after them, as for ``fmkit train`` (``--predictor-type
binary_classifier --epochs 10``), or ``--hyperparameters FILE``; ranges come from
``--ranges ranges.json`` (SageMaker's ParameterRanges) or the FM preset space.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

logger = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    """Add ``fmkit tune``."""

    @app.command(
        "tune",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        epilog="Fixed hyperparameters are flags named after SageMaker's names: "
               "--predictor-type binary_classifier --epochs 15 ... (see docs/tuning.md).",
    )
    def tune(
        ctx: typer.Context,
        train: str = typer.Option(..., "--train", help="Train channel: file, folder, glob or "
                                  "s3:// prefix."),
        test: str | None = typer.Option(None, "--test", help="Test channel, scored after "
                                           "each trial (test:* objectives)."),
        validation: str | None = typer.Option(None, "--validation", help="Validation "
                                                 "channel, scored every epoch."),
        objective: str | None = typer.Option(
            None, "--objective", help="Objective metric, e.g. test:binary_classification_accuracy"
            " (default: test:rmse for regressors, test:binary_classification_accuracy for "
            "binary classifiers)."),
        direction: str | None = typer.Option(None, "--direction",
                                                help="maximize|minimize (default: the metric's)."),
        ranges: Path | None = typer.Option(None, "--ranges", help="SageMaker "
                                              "ParameterRanges JSON (default: the FM preset "
                                              "space)."),
        max_jobs: int = typer.Option(20, "--max-jobs", help="Trials to run."),
        max_parallel_jobs: int = typer.Option(1, "--max-parallel-jobs",
                                              help="Trials at once (one process each)."),
        strategy: str = typer.Option("bayesian", "--strategy",
                                     help="bayesian (TPE) | random | hyperband."),
        early_stopping: str = typer.Option("Off", "--early-stopping",
                                           help="Off | Auto (median pruning of trials)."),
        name: str | None = typer.Option(None, "--name", help="Tuning job name (<= 32 "
                                           "characters); the best model is registered under it."),
        max_run_seconds: float | None = typer.Option(
            None, "--max-run-seconds", help="Wall-time budget of the whole tuning job; "
            "running trials stop and keep their models."),
        hyperparameters: Path | None = typer.Option(
            None, "--hyperparameters", help="SageMaker hyperparameters.json (fixed values)."),
        defaults: str | None = typer.Option(
            None, "--defaults", help="sagemaker|fmkit (default: sagemaker with "
                                     "--hyperparameters, else fmkit)."),
        content_type: str | None = typer.Option(None, "--content-type",
                                                   help="Format of the channels."),
        vocabulary: str | None = typer.Option(None, "--vocabulary", help="vocabulary.json "
                                                 "(default: next to the train channel)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the sampler."),
        keep_models: str = typer.Option("best", "--keep-models", help="best|all trial models."),
        include_defaults: bool = typer.Option(
            False, "--include-defaults", help="Make trial 1 the untuned configuration, so the "
            "result is never worse than the defaults."),
        validation_fraction: float = typer.Option(
            0.1, "--validation-fraction", help="Without --validation, the share of train held "
            "out as validation for hyperband / --early-stopping Auto."),
    ) -> None:
        """Tune hyperparameters; register the best trial's model under the job name."""
        from fmkit.cli.jobs import describe_tuning_job
        from fmkit.jobs import tuning as service
        from fmkit.jobs.hyperparameters import hyperparameter_values
        from fmkit.registry import Registry
        from fmkit.tuning import read_ranges

        fixed, chosen = hyperparameter_values(hyperparameters, list(ctx.args), defaults)
        request = service.TuningRequest(
            channels={"train": train, "test": test, "validation": validation},
            static_hyperparameters=fixed,
            ranges=read_ranges(ranges) if ranges is not None else None, objective=objective,
            direction=direction, strategy=strategy, max_jobs=max_jobs,
            max_parallel_jobs=max_parallel_jobs, early_stopping=early_stopping, name=name,
            max_run_seconds=max_run_seconds, seed=seed, keep_models=keep_models,
            include_defaults=include_defaults, defaults=chosen, content_type=content_type,
            validation_fraction=validation_fraction,
            vocabulary=vocabulary, source="cli")
        registry = Registry()
        job = service.run(request, registry=registry)
        typer.echo(describe_tuning_job(job, registry.tuning.trials(job.name)))
        if job.best_training_job is not None:
            model = registry.models.get(job.name)
            typer.echo(f"\nbest model: {model.name} -> {model.artifact}")
        if job.status == "Failed":
            raise typer.Exit(1)
