"""Tuning jobs: the list, and one job's trials (sortable), objective over trials, each tuned
hyperparameter against the objective, and the best trial."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fmkit.console import services
from fmkit.console.charts import Point, scatter_chart
from fmkit.console.context import Ctx, Reply, html, json_reply, redirect
from fmkit.console.html import (
    cell,
    duration,
    e,
    kv,
    link,
    mapping,
    num,
    page,
    post_button,
    section,
    status,
    table,
    u,
    when,
)
from fmkit.registry.records import TrainingJob, TuningJob


def list_page(ctx: Ctx) -> Reply:
    found = ctx.registry.tuning.list()
    rows = [[
        cell(link(f"/tuning/{u(t.name)}", t.name), t.name),
        cell(status(t.status), t.status),
        cell(e(t.strategy)),
        cell(e(f"{t.objective_metric} ({t.direction})")),
        cell(e(num(t.best_objective_value)), t.best_objective_value or ""),
        cell(link(f"/jobs/{u(t.best_training_job)}", t.best_training_job)
             if t.best_training_job else "-"),
        cell(e(f"{t.max_jobs} / {t.max_parallel_jobs}")),
        cell(e(when(t.start_time)), t.start_time),
    ] for t in found]
    body = table(["name", "status", "strategy", "objective", "best", "best trial",
                  "trials / parallel", "started (UTC)"], rows, sortable=True,
                 empty="no tuning jobs")
    return html(page("Tuning jobs", body, active="/tuning", csrf=ctx.csrf))


def tuned_names(job: TuningJob) -> list[str]:
    """Names of the tuned hyperparameters (SageMaker ParameterRanges)."""
    names = []
    for ranges in (job.ranges or {}).values():
        if isinstance(ranges, list):
            names += [r["Name"] for r in ranges if isinstance(r, dict) and "Name" in r]
    return sorted(set(names))


def _log_scaled(job: TuningJob, name: str, values: Sequence[float]) -> bool:
    for ranges in (job.ranges or {}).values():
        for r in ranges if isinstance(ranges, list) else []:
            if isinstance(r, dict) and r.get("Name") == name:
                scaling = str(r.get("ScalingType", "Auto"))
                if scaling.startswith("Logarithmic"):
                    return True
                if scaling != "Auto":
                    return False
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and bool(positive) and max(positive) / min(positive) > 50


def ordered(trials: Sequence[TrainingJob], direction: str) -> list[TrainingJob]:
    """Trials best first by the objective; those without a value last, by trial number."""
    done = [t for t in trials if t.objective_value is not None]
    rest = [t for t in trials if t.objective_value is None]
    done.sort(key=lambda t: t.objective_value, reverse=direction.lower().startswith("max"))
    return done + sorted(rest, key=lambda t: t.trial_number or 0)


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def charts(job: TuningJob, trials: Sequence[TrainingJob]) -> str:
    maximize = job.direction.lower().startswith("max")
    scored = sorted((t for t in trials if t.objective_value is not None),
                    key=lambda t: t.trial_number or 0)
    if not scored:
        return '<p class="muted">no trial has an objective value yet.</p>'
    points, step, best = [], [], None
    for t in scored:
        v = float(t.objective_value)  # type: ignore[arg-type]
        if best is None or (v > best if maximize else v < best):
            best = v
        step.append((float(t.trial_number or 0), best))
        points.append(Point(float(t.trial_number or 0), v, f"trial {t.trial_number}",
                            f"/jobs/{u(t.name)}", t.name == job.best_training_job, t.status))
    out = ['<figure data-chart="objective">' + scatter_chart(
        points, title=f"{job.objective_metric} per trial (line: best so far)",
        x_label="trial", y_label=job.objective_metric, step=step, integer_x=True)
        + "</figure>"]
    for name in tuned_names(job):
        pts = []
        for t in scored:
            x = _float(t.hyperparameters.get(name))
            if x is not None:
                pts.append(Point(x, float(t.objective_value), f"trial {t.trial_number}, "  # type: ignore[arg-type]
                                 f"{name}={num(x)}", f"/jobs/{u(t.name)}",
                                 t.name == job.best_training_job, t.status))
        if not pts:
            continue
        log_x = _log_scaled(job, name, [p.x for p in pts])
        out.append(f'<figure data-chart="{e(name)}">' + scatter_chart(
            pts, title=f"{name} vs {job.objective_metric}",
            x_label=name + (" (log)" if log_x else ""),
            y_label=job.objective_metric, log_x=log_x) + "</figure>")
    return '<div class="charts">' + "".join(out) + "</div>"


def trials_table(job: TuningJob, trials: Sequence[TrainingJob]) -> str:
    tuned = tuned_names(job)
    rows = []
    for rank, t in enumerate(ordered(trials, job.direction), 1):
        has = t.objective_value is not None
        best = ' class="best-row"' if t.name == job.best_training_job else ""
        rows.append([
            cell(e(rank if has else "-"), rank if has else 10 ** 9),
            cell(link(f"/jobs/{u(t.name)}", t.trial_number) + (" &#9733;" if best else ""),
                 t.trial_number or 0),
            cell(status(t.status), t.status),
            cell(e(num(t.objective_value)), t.objective_value if has else "", cls="objective"),
            *[cell(e(num(t.hyperparameters.get(k))), t.hyperparameters.get(k, ""))
              for k in tuned],
            cell(e(duration(t.seconds)), round(t.seconds, 3)),
            cell(e((t.failure_reason or "")[:80])),
        ])
    return table(["rank", "trial", "status", job.objective_metric, *tuned, "time", "reason"],
                 rows, sortable=True, empty="no trials yet", cls="trials")


def _summary(ctx: Ctx, job: TuningJob, trials: Sequence[TrainingJob]) -> str:
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    best = job.best_training_job
    pairs = [
        ("Status", status(job.status)
         + (f' <span class="reason">{e(job.failure_reason)}</span>' if job.failure_reason else "")),
        ("Objective", e(f"{job.objective_metric} ({job.direction})")),
        ("Strategy", e(f"{job.strategy}, {job.max_jobs} trials, "
                       f"{job.max_parallel_jobs} in parallel")),
        ("Trials", e(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none yet")),
        ("Best trial", (link(f"/jobs/{u(best)}", best) + f" {e(num(job.best_objective_value))}")
         if best else "-"),
        ("Started", e(when(job.start_time)) + " UTC"),
        ("Ended", e(when(job.end_time))),
    ]
    out = kv(pairs)
    if services.is_running(job):
        out += post_button(f"/tuning/{u(job.name)}/stop", "Stop tuning job", ctx.csrf,
                           cls="danger", confirm=f"Stop {job.name}?")
    return out


def _best(ctx: Ctx, job: TuningJob) -> str:
    if not job.best_training_job or not ctx.registry.jobs.exists(job.best_training_job):
        return '<p class="muted">no best trial yet.</p>'
    best = ctx.registry.jobs.get(job.best_training_job)
    tuned = tuned_names(job)
    return (kv([("Trial", link(f"/jobs/{u(best.name)}", best.name)),
                (job.objective_metric, e(num(best.objective_value)))]
               + [(k, e(num(best.hyperparameters.get(k)))) for k in tuned]))


def sections(ctx: Ctx, job: TuningJob) -> dict[str, str]:
    trials = ctx.registry.tuning.trials(job.name)
    return {"tuning-summary": _summary(ctx, job, trials), "tuning-best": _best(ctx, job),
            "tuning-charts": charts(job, trials), "tuning-trials": trials_table(job, trials)}


def tuning_page(ctx: Ctx) -> Reply:
    job = ctx.registry.tuning.get(ctx.param("name"))
    s = sections(ctx, job)
    body = ('<div class="two">' + section("Summary", s["tuning-summary"], sid="tuning-summary")
            + section("Best trial", s["tuning-best"], sid="tuning-best") + "</div>"
            + section("Objective", s["tuning-charts"], sid="tuning-charts")
            + section("Trials (click a header to sort)", s["tuning-trials"], sid="tuning-trials")
            + '<div class="two">'
            + section("Fixed hyperparameters", mapping(job.static_hyperparameters))
            + section("Channels", mapping({k: v for k, v in job.channels.items() if v}))
            + "</div>")
    running = services.is_running(job)
    return html(page(f"Tuning job {job.name}", body, active="/tuning", csrf=ctx.csrf,
                     poll=f"/api/tuning/{u(job.name)}" if running else None))


def tuning_api(ctx: Ctx) -> Reply:
    job = ctx.registry.tuning.get(ctx.param("name"))
    return json_reply({"name": job.name, "status": job.status,
                       "done": not services.is_running(job), "sections": sections(ctx, job)})


def stop(ctx: Ctx) -> Reply:
    name = ctx.param("name")
    ctx.registry.tuning.get(name)
    services.stop_tuning(ctx.registry, name)
    return redirect(f"/tuning/{u(name)}")
