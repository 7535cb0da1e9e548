"""Training jobs: the list (filter by status, search by name, trials on a toggle) and the
page of one job (hyperparameters, channels, learning curves, log, model)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fmkit.console import services
from fmkit.console.charts import Series, line_chart
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
    query,
    section,
    select,
    status,
    table,
    table_rows,
    u,
    when,
)
from fmkit.registry.records import STATUSES, TrainingJob

HEADLINE = ("test:binary_classification_accuracy", "test:rmse",
            "validation:binary_classification_accuracy", "validation:rmse",
            "train:binary_classification_accuracy", "train:rmse")
CHANNELS = ("train", "validation", "test")
PAGE_SIZE = 200


def algorithm(job: TrainingJob) -> str:
    hp = job.hyperparameters or {}
    solver = hp.get("solver") or "sgd"
    kind = hp.get("predictor_type") or "-"
    return f"{solver} / {kind}"


def headline(job: TrainingJob) -> tuple[str, float | None]:
    """The metric a list shows for a job: the objective for trials, else the first of
    :data:`HEADLINE` that the job has."""
    if job.tuning_job and job.objective_value is not None:
        return "objective", job.objective_value
    metrics = job.final_metrics or {}
    for key in HEADLINE:
        if metrics.get(key) is not None:
            return key, metrics[key]
    for key in sorted(metrics):
        if isinstance(metrics[key], (int, float)):
            return key, metrics[key]
    return "-", None


def _status_text(job: TrainingJob) -> str:
    second = job.secondary_status
    if job.status in ("InProgress", "Stopping") and second and second != job.status:
        return f"{job.status} ({second})"
    return job.status


def job_rows(jobs: Sequence[TrainingJob]) -> list[list[str]]:
    rows = []
    for j in jobs:
        key, value = headline(j)
        trial = (f' <span class="muted">trial {e(j.trial_number)} of '
                 f'{link("/tuning/" + u(j.tuning_job), j.tuning_job)}</span>'
                 if j.tuning_job else "")
        rows.append([
            cell(link(f"/jobs/{u(j.name)}", j.name) + trial, j.name),
            cell(status(_status_text(j)), j.status),
            cell(e(algorithm(j)), algorithm(j)),
            cell(f'<span class="metric-name">{e(key)}</span> {e(num(value))}',
                 "" if value is None else value),
            cell(e(duration(j.seconds)), round(j.seconds, 3)),
            cell(e(when(j.start_time)), j.start_time),
            cell(e(j.source or "-")),
        ])
    return rows


HEADERS = ["name", "status", "algorithm / type", "objective metric", "duration",
           "started (UTC)", "source"]


def _list_args(ctx: Ctx) -> tuple[str | None, str, bool, int]:
    st = ctx.arg("status") or None
    if st not in (None, *STATUSES):
        st = None
    try:
        limit = max(1, min(100000, int(ctx.arg("limit", str(PAGE_SIZE)))))
    except ValueError:
        limit = PAGE_SIZE
    return st, ctx.arg("q"), ctx.arg("trials") in ("1", "on", "true"), limit


def list_page(ctx: Ctx) -> Reply:
    st, q, trials, limit = _list_args(ctx)
    found = services.list_jobs(ctx.registry, status=st, search=q, trials=trials)
    shown = found[:limit]
    running = any(services.is_running(j) for j in shown)
    every = "/jobs" + query(status=st, q=q, trials=int(trials) or None, limit=len(found))
    more = (f'<p class="muted">showing {len(shown)} of {len(found)}; '
            f'{link(every, "show all")}</p>'
            if len(found) > len(shown)
            else f'<p class="muted">{len(found)} job{"" if len(found) == 1 else "s"}</p>')
    filters = (
        '<form method="get" action="/jobs" class="filters" id="jobs-filter">'
        + select("status", [("", "any status")] + [(s, s) for s in STATUSES], st or "")
        + f'<input type="search" name="q" id="f-q" value="{e(q)}" placeholder="search by name">'
        + f'<label class="check"><input type="checkbox" name="trials" value="1" id="f-trials"'
        f'{" checked" if trials else ""}> include tuning trials</label>'
        '<button type="submit">Filter</button></form>'
    )
    poll = "/api/jobs" + query(status=st, q=q, trials=int(trials) or None, limit=limit)
    body = (filters + f'<div id="jobs-count">{more}</div>'
            + table(HEADERS, job_rows(shown), sortable=True, tbody_id="jobs-body",
                    empty="no training jobs match", cls="jobs"))
    return html(page("Training jobs", body, active="/jobs", csrf=ctx.csrf,
                     poll=poll if running else None))


def list_api(ctx: Ctx) -> Reply:
    st, q, trials, limit = _list_args(ctx)
    found = services.list_jobs(ctx.registry, status=st, search=q, trials=trials)[:limit]
    inner = table_rows(HEADERS, job_rows(found), empty="no training jobs match")
    return json_reply({"sections": {"jobs-body": inner},
                       "done": not any(services.is_running(j) for j in found),
                       "count": len(found)})


# ------------------------------------------------------------------------- one job
def curves(epochs: list[dict[str, Any]], final: dict[str, Any]) -> str:
    """One chart per metric (rmse, accuracy, ...) with a line per channel."""
    metrics: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for row in epochs:
        ep = row.get("epoch")
        for key, value in row.items():
            if ":" not in key or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            channel, metric = key.split(":", 1)
            metrics.setdefault(metric, {}).setdefault(channel, []).append((ep, value))
    last = max((r.get("epoch", 0) for r in epochs), default=0)
    for key, value in (final or {}).items():  # a final metric no epoch has: one point
        if ":" not in key or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        channel, metric = key.split(":", 1)
        if metric in metrics and channel not in metrics[metric]:
            metrics[metric][channel] = [(last, value)]
    if not metrics:
        return '<p class="muted">no per-epoch metrics yet.</p>'
    charts = []
    first = ("rmse", "binary_classification_accuracy")
    for metric in sorted(metrics, key=lambda m: (m not in first, m)):
        by_channel = metrics[metric]
        order = [c for c in CHANNELS if c in by_channel] + sorted(set(by_channel) - set(CHANNELS))
        series = [Series(c, [p[0] for p in by_channel[c]], [p[1] for p in by_channel[c]])
                  for c in order]
        charts.append(f'<figure data-metric="{e(metric)}">'
                      + line_chart(series, title=metric, y_label=metric) + "</figure>")
    return '<div class="charts">' + "".join(charts) + "</div>"


def _summary(ctx: Ctx, job: TrainingJob) -> str:
    pairs = [
        ("Status", status(_status_text(job))
         + (f' <span class="reason">{e(job.failure_reason)}</span>' if job.failure_reason else "")),
        ("Algorithm", e(algorithm(job))),
        ("Started", e(when(job.start_time)) + " UTC"),
        ("Ended", e(when(job.end_time)) + (" UTC" if job.end_time else "")),
        ("Duration", e(duration(job.seconds))),
        ("Best epoch", e(num(job.best_epoch))),
        ("Source", e(job.source or "-")),
    ]
    if job.tuning_job:
        pairs.insert(1, ("Tuning job", link(f"/tuning/{u(job.tuning_job)}", job.tuning_job)
                         + f" trial {e(job.trial_number)}, objective "
                         f"{e(num(job.objective_value))}"))
    transitions = job.transitions or []
    if transitions:
        steps = " &rarr; ".join(e(t.get("Status")) for t in transitions)
        pairs.append(("Progress", steps))
    out = kv(pairs) + '<div class="actions">'
    if services.is_running(job):
        out += post_button(f"/jobs/{u(job.name)}/stop", "Stop job", ctx.csrf, cls="danger",
                           confirm=f"Stop {job.name} after its current epoch?")
    out += f'<a class="button" id="clone" href="/train?from={e(u(job.name))}">Clone</a></div>'
    return out


def _model_section(ctx: Ctx, job: TrainingJob) -> str:
    models = services.job_models(ctx.registry, job.name)
    pairs = [("Model folder", e(job.model_dir or "-")), ("Artifact", e(job.artifact or "-"))]
    tarball = job.output_tarball
    if tarball:
        pairs.append(("model.tar.gz", e(tarball)))
    for m in models:
        pairs.append(("Registered model", link(f"/models/{u(m.name)}", m.name)))
    return kv(pairs)


def sections(ctx: Ctx, job: TrainingJob) -> dict[str, str]:
    epochs = ctx.registry.jobs.epochs(job.name)
    return {
        "job-summary": _summary(ctx, job),
        "job-curves": curves(epochs, job.final_metrics),
        "job-metrics": mapping(job.final_metrics) if job.final_metrics
        else '<p class="muted">none yet</p>',
        "job-model": _model_section(ctx, job),
    }


def job_page(ctx: Ctx) -> Reply:
    job = services.describe_job(ctx.registry, ctx.param("name"))
    s = sections(ctx, job)
    channels = {k: (v if isinstance(v, str) else (v or {}).get("uri", v))
                for k, v in (job.channels or {}).items() if v}
    body = (
        section("Summary", s["job-summary"], sid="job-summary")
        + section("Learning curves", s["job-curves"], sid="job-curves")
        + '<div class="two">'
        + section("Final metrics", s["job-metrics"], sid="job-metrics")
        + section("Hyperparameters", mapping(job.hyperparameters))
        + "</div><div class=\"two\">"
        + section("Channels", kv((k, e(v)) for k, v in sorted(channels.items())))
        + section("Model", s["job-model"], sid="job-model")
        + "</div>"
        + section("Log", '<pre class="log" id="job-log"></pre>'
                  '<p class="muted" id="job-log-state"></p>')
    )
    running = services.is_running(job)
    name = u(job.name)
    return html(page(f"Training job {job.name}", body, active="/jobs", csrf=ctx.csrf,
                     poll=f"/api/jobs/{name}" if running else None,
                     log=f"/api/jobs/{name}/log"))


def job_api(ctx: Ctx) -> Reply:
    job = services.describe_job(ctx.registry, ctx.param("name"))
    return json_reply({"name": job.name, "status": job.status,
                       "secondary_status": job.secondary_status,
                       "done": not services.is_running(job), "sections": sections(ctx, job),
                       "epochs": ctx.registry.jobs.epochs(job.name)})


def log_api(ctx: Ctx) -> Reply:
    job = ctx.registry.jobs.get(ctx.param("name"))
    try:
        start = max(0, int(ctx.arg("start", "0")))
    except ValueError:
        start = 0
    events, nxt = services.log_events(ctx.registry, job, start)
    return json_reply({"events": [{"seq": ev.seq, "time": ev.time, "message": ev.message}
                                  for ev in events],
                       "next": nxt, "done": not services.is_running(job)})


def stop(ctx: Ctx) -> Reply:
    name = ctx.param("name")
    ctx.registry.jobs.get(name)
    services.stop_job(ctx.registry, name)
    return redirect(f"/jobs/{u(name)}")
