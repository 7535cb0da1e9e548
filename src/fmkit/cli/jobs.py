"""``fmkit jobs list|describe|stop``, ``fmkit models list``, ``fmkit tuning list|describe|stop``.

Read and steer the registry ($FMKIT_HOME/registry.db). ``describe`` prints a terminal view
(``--json`` prints the record); ``--plot`` draws learning curves or tuning progress.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Render rows as left-aligned columns under their headers."""
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r]
                                            for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _num(value: Any) -> str:
    from fmkit.registry.records import format_number

    return format_number(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _registry() -> Any:
    from fmkit.registry import Registry

    return Registry()


def _job_dict(job: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(job)


def _status(record: Any) -> str:
    """The status, flagged when an unfinished job's process is gone from this machine."""
    from fmkit.registry.jobs import process_alive
    from fmkit.registry.records import FINAL_STATUSES

    if record.status not in FINAL_STATUSES and process_alive(record.pid, record.host) is False:
        return f"{record.status} (process gone)"
    return str(record.status)


def _headline(job: Any) -> str:
    metrics = job.final_metrics or {}
    for key in ("test:binary_classification_accuracy", "test:rmse",
                "train:binary_classification_accuracy", "train:rmse"):
        if metrics.get(key) is not None:
            return f"{key}={_num(metrics[key])}"
    return "-"


def describe_training_job(job: Any, epochs: list[dict[str, Any]]) -> str:
    """Return the terminal view of one training job."""
    from fmkit.registry.records import format_time

    lines = [
        f"Name:            {job.name}",
        f"Status:          {job.status}" + (f"  ({job.failure_reason})"
                                            if job.failure_reason else ""),
        f"Started:         {format_time(job.start_time)} UTC",
        f"Ended:           {format_time(job.end_time)} UTC  ({_duration(job.seconds)})",
    ]
    if job.tuning_job:
        lines.append(f"Tuning job:      {job.tuning_job} (trial {job.trial_number})")
    lines += [
        f"Model dir:       {job.model_dir or '-'}",
        f"Artifact:        {job.artifact or '-'}",
        f"Log file:        {job.log_file or '-'}",
        f"Best epoch:      {_num(job.best_epoch)}",
        "Channels:        " + (", ".join(f"{k}={v}" for k, v in job.channels.items()
                                          if v is not None) or "-"),
        "Hyperparameters: " + (", ".join(f"{k}={_num(v)}" for k, v in sorted(
            job.hyperparameters.items()) if v is not None) or "-"),
    ]
    if job.final_metrics:
        lines.append("Final metrics:")
        lines += [f"  {k:<45} {_num(v)}" for k, v in sorted(job.final_metrics.items())]
    if epochs:
        keys = [k for k in epochs[0] if ":" in k]
        lines.append(f"Epochs ({len(epochs)}):")
        rows = [[int(e["epoch"])] + [_num(e.get(k)) for k in keys] +
                [_num(e.get("seconds"))] for e in epochs]
        short = [k.replace("binary_classification_", "bc_") for k in keys]
        lines.append(table(["epoch", *short, "seconds"], rows))
    return "\n".join(lines)


def trial_rows(trials: Sequence[Any], direction: str) -> list[Any]:
    """Return trials sorted by objective (best first), trials without a value last."""
    with_value = [t for t in trials if t.objective_value is not None]
    without = [t for t in trials if t.objective_value is None]
    with_value.sort(key=lambda t: t.objective_value, reverse=direction == "maximize")
    return with_value + without


def describe_tuning_job(job: Any, trials: Sequence[Any]) -> str:
    """Return the terminal view of a tuning job: settings, then trials by objective."""
    from fmkit.registry.records import format_time

    tuned = sorted({k for r in job.ranges.values() for e in r for k in [e["Name"]]})
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    end = job.end_time
    lines = [
        f"Name:             {job.name}",
        f"Status:           {job.status}" + (f"  ({job.failure_reason})"
                                             if job.failure_reason else ""),
        f"Objective:        {job.objective_metric} ({job.direction})",
        (f"Strategy:         {job.strategy}, {job.max_jobs} trials, {job.max_parallel_jobs} "
         "in parallel"),
        f"Started:          {format_time(job.start_time)} UTC",
        f"Ended:            {format_time(end)} UTC"
        + (f"  ({_duration(end - job.start_time)})" if end else ""),
        "Trials:           " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                                or "none yet"),
        (f"Best trial:       {job.best_training_job or '-'}  "
         f"{job.objective_metric}={_num(job.best_objective_value)}"),
        "Fixed:            " + (", ".join(f"{k}={v}" for k, v in sorted(
            job.static_hyperparameters.items())) or "-"),
        "Tuned:            " + ", ".join(tuned),
    ]
    if trials:
        rows = []
        for rank, t in enumerate(trial_rows(trials, job.direction), 1):
            values = [_num(t.hyperparameters.get(k)) for k in tuned]
            rows.append([rank if t.objective_value is not None else "-", t.trial_number,
                         t.status, _num(t.objective_value), *values,
                         _duration(t.seconds), (t.failure_reason or "")[:60]])
        lines.append("")
        lines.append(table(["rank", "trial", "status", job.objective_metric, *tuned, "time",
                            "reason"], rows))
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add the ``jobs``, ``models`` and ``tuning`` command groups."""
    jobs = typer.Typer(help="Training jobs in the registry ($FMKIT_HOME/registry.db).",
                       no_args_is_help=True)
    models = typer.Typer(help="Registered models.", no_args_is_help=True)
    tuning = typer.Typer(help="Hyperparameter tuning jobs.", no_args_is_help=True)
    app.add_typer(jobs, name="jobs")
    app.add_typer(models, name="models")
    app.add_typer(tuning, name="tuning")

    @jobs.command("list")
    def jobs_list(
        status: str | None = typer.Option(None, "--status",
                                             help="InProgress|Stopping|Completed|Failed|Stopped"),
        trials: bool = typer.Option(False, "--trials/--no-trials",
                                    help="Include the trials of tuning jobs."),
        tuning_job: str | None = typer.Option(None, "--tuning-job",
                                                 help="Only the trials of this tuning job."),
        limit: int = typer.Option(50, "--limit", help="Show at most this many (0: all)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON records."),
    ) -> None:
        """List training jobs, newest first."""
        from fmkit.errors import ConfigError
        from fmkit.registry.records import STATUSES, format_time

        if status is not None and status not in STATUSES:
            raise ConfigError(f"--status must be one of {', '.join(STATUSES)}; got {status!r}.")
        reg = _registry()
        found = reg.jobs.list(status=status, tuning_job=tuning_job,
                              include_trials=trials, limit=limit or None)
        if as_json:
            typer.echo(json.dumps([_job_dict(j) for j in found], indent=2))
            return
        hidden = 0 if trials or tuning_job is not None else sum(
            1 for j in reg.jobs.list(status=status) if j.tuning_job is not None)
        footer = (f"{hidden} tuning trial{'s' if hidden != 1 else ''} hidden; --trials "
                  "shows them") if hidden else ""
        if not found:
            typer.echo("no training jobs" + (f" ({footer})" if footer else ""))
            return
        typer.echo(table(["name", "status", "started (UTC)", "time", "metric"],
                         [[j.name, _status(j), format_time(j.start_time),
                           _duration(j.seconds), _headline(j)] for j in found]))
        if footer:
            typer.echo(f"\n{footer}")

    @jobs.command("describe")
    def jobs_describe(
        name: str = typer.Argument(..., help="Training job name."),
        plot: Path | None = typer.Option(None, "--plot", help="Draw train/validation "
                                            "metrics per epoch into this image (.png, .svg)."),
        as_json: bool = typer.Option(False, "--json", help="Print the record as JSON."),
    ) -> None:
        """Show a training job: status, hyperparameters, final and per-epoch metrics."""
        reg = _registry()
        job = reg.jobs.get(name)
        epochs = reg.jobs.epochs(name)
        if as_json:
            typer.echo(json.dumps({**_job_dict(job), "epochs": epochs}, indent=2))
        else:
            typer.echo(describe_training_job(job, epochs))
        if plot is not None:
            from fmkit.registry.plots import plot_learning_curves

            out = plot_learning_curves(epochs, plot, title=name)
            typer.echo(f"wrote {out}", err=True)

    @jobs.command("stop")
    def jobs_stop(name: str = typer.Argument(..., help="Training or tuning job name.")) -> None:
        """Ask a running job to stop after its current epoch (status Stopped, model kept)."""
        reg = _registry()
        if not reg.jobs.exists(name) and reg.tuning.exists(name):
            tjob = reg.tuning.request_stop(name)
            typer.echo(f"{name}: {tjob.status}")
            return
        job = reg.jobs.request_stop(name)
        typer.echo(f"{name}: {job.status}")

    @jobs.command("logs")
    def jobs_logs(
        name: str = typer.Argument(..., help="Training job name."),
        follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines "
                                    "until the job ends."),
    ) -> None:
        """Print a training job's log (every line it logged, #quality_metric lines included)."""
        import time

        from fmkit.jobs import training
        from fmkit.registry.records import FINAL_STATUSES

        reg = _registry()
        training.describe(name, registry=reg)  # an unknown name is a one-line error
        token = 0
        while True:
            events, token = training.log_events(name, start=token, registry=reg)
            for event in events:
                typer.echo(event.message)
            if events:
                continue
            if not follow or training.describe(name, registry=reg).status in FINAL_STATUSES:
                # one last read: lines written between the read and the status check
                events, token = training.log_events(name, start=token, registry=reg)
                for event in events:
                    typer.echo(event.message)
                return
            time.sleep(0.5)

    @models.command("list")
    def models_list(as_json: bool = typer.Option(False, "--json")) -> None:
        """List registered models, newest first."""
        import dataclasses

        from fmkit.registry.records import format_time

        found = _registry().models.list()
        if as_json:
            typer.echo(json.dumps([dataclasses.asdict(m) for m in found], indent=2))
            return
        if not found:
            typer.echo("no models")
            return
        rows = []
        for m in found:
            preferred = [k for k in ("test:binary_classification_accuracy", "test:rmse")
                         if k in m.metrics] + sorted(k for k in m.metrics
                                                     if k.startswith("test:"))
            headline = f"{preferred[0]}={_num(m.metrics[preferred[0]])}" if preferred else "-"
            rows.append([m.name, m.predictor_type, m.training_job,
                         format_time(m.creation_time), headline, m.artifact])
        typer.echo(table(["name", "predictor_type", "training job", "created (UTC)",
                          "metric", "artifact"], rows))

    @tuning.command("list")
    def tuning_list(as_json: bool = typer.Option(False, "--json")) -> None:
        """List tuning jobs, newest first."""
        import dataclasses

        from fmkit.registry.records import format_time

        found = _registry().tuning.list()
        if as_json:
            typer.echo(json.dumps([dataclasses.asdict(t) for t in found], indent=2))
            return
        if not found:
            typer.echo("no tuning jobs")
            return
        typer.echo(table(
            ["name", "status", "strategy", "objective", "best", "best trial", "started (UTC)"],
            [[t.name, _status(t), t.strategy, t.objective_metric, _num(t.best_objective_value),
              t.best_training_job, format_time(t.start_time)] for t in found]))

    @tuning.command("describe")
    def tuning_describe(
        name: str = typer.Argument(..., help="Tuning job name."),
        plot: bool = typer.Option(False, "--plot", help="Draw the objective per trial and "
                                  "the best-so-far line."),
        plot_file: Path | None = typer.Option(None, "--plot-file",
                                                 help="Image for --plot (default "
                                                      "NAME-tuning.png)."),
        as_json: bool = typer.Option(False, "--json", help="Print the record and trials."),
    ) -> None:
        """Show a tuning job and its trials, sorted by the objective (best first)."""
        import dataclasses

        reg = _registry()
        job = reg.tuning.get(name)
        trials = reg.tuning.trials(name)
        if as_json:
            typer.echo(json.dumps({**dataclasses.asdict(job),
                                   "trials": [dataclasses.asdict(t) for t in trials]},
                                  indent=2))
        else:
            typer.echo(describe_tuning_job(job, trials))
        if plot or plot_file is not None:
            from fmkit.registry.plots import plot_tuning

            out = plot_tuning(
                [(t.trial_number or 0, t.objective_value, t.status) for t in trials],
                plot_file or Path(f"{name}-tuning.png"), objective=job.objective_metric,
                direction=job.direction, title=name)
            typer.echo(f"wrote {out}", err=True)

    @tuning.command("stop")
    def tuning_stop(name: str = typer.Argument(..., help="Tuning job name.")) -> None:
        """Stop a tuning job: no new trials; running trials stop and keep their models."""
        job = _registry().tuning.request_stop(name)
        typer.echo(f"{name}: {job.status}")
