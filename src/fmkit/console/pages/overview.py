"""The first page: how many jobs, models and endpoints there are, and the latest jobs."""

from __future__ import annotations

from fmkit.console import services
from fmkit.console.context import Ctx, Reply, html
from fmkit.console.html import e, link, page, query, section, status, table, u
from fmkit.console.pages.jobs import HEADERS, job_rows


def overview(ctx: Ctx) -> Reply:
    reg = ctx.registry
    jobs = reg.jobs.list(include_trials=False)
    counts: dict[str, int] = {}
    for j in jobs:
        counts[j.status] = counts.get(j.status, 0) + 1
    tuning = reg.tuning.list()
    models = reg.models.list()
    endpoints = reg.endpoints.list()
    serving = sum(1 for ep in endpoints if ep.status == "InService")
    by_status = " ".join(f'<a href="/jobs{query(status=s)}">{status(f"{n} {s}")}</a>'
                         for s, n in sorted(counts.items()))
    cards = (
        '<div class="cards">'
        f'<div class="card"><a href="/jobs"><div class="big">{len(jobs)}</div>training jobs</a>'
        f"<div>{by_status}</div></div>"
        f'<div class="card"><a href="/tuning"><div class="big">{len(tuning)}</div>tuning jobs'
        "</a></div>"
        f'<div class="card"><a href="/models"><div class="big">{len(models)}</div>models</a>'
        "</div>"
        f'<div class="card"><a href="/endpoints"><div class="big">{len(endpoints)}</div>'
        f"endpoints</a><div>{e(serving)} in service (as last recorded)</div></div>"
        "</div>")
    recent = [services.describe_job(reg, j.name) if services.is_running(j) else j
              for j in jobs[:10]]
    running = any(services.is_running(j) for j in recent)
    body = (cards
            + section("Latest training jobs", table(HEADERS, job_rows(recent),
                                                    tbody_id="jobs-body",
                                                    empty="no training jobs yet; "
                                                          "start one from Start training"))
            + (section("Latest tuning jobs", table(
                ["name", "status", "objective", "best"],
                [[link(f"/tuning/{u(t.name)}", t.name), status(t.status),
                  e(f"{t.objective_metric} ({t.direction})"),
                  e(t.best_objective_value)] for t in tuning[:5]])) if tuning else ""))
    return html(page("Overview", body, active="/", csrf=ctx.csrf,
                     poll="/api/jobs?limit=10" if running else None))
