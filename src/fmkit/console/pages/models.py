"""Models: the list, and one model's metrics, hyperparameters, size and files, with export
(npz, SageMaker model.tar.gz) and deploy."""

from __future__ import annotations

from fmkit.console import security, services
from fmkit.console.context import Ctx, Reply, file_reply, html, redirect
from fmkit.console.html import (
    cell,
    csrf_field,
    e,
    field,
    kv,
    link,
    mapping,
    num,
    page,
    post_button,
    section,
    size,
    status,
    table,
    text_input,
    u,
    when,
)
from fmkit.errors import FMError
from fmkit.registry.records import Model, valid_name

PREFERRED = ("test:binary_classification_accuracy", "test:rmse",
             "validation:binary_classification_accuracy", "validation:rmse")


def headline(metrics: dict) -> str:
    for key in PREFERRED + tuple(sorted(k for k in metrics if k.startswith("test:"))):
        if metrics.get(key) is not None:
            return f"{key} {num(metrics[key])}"
    return "-"


def list_page(ctx: Ctx) -> Reply:
    rows = []
    for m in ctx.registry.models.list():
        info = services.model_info(m)
        rows.append([
            cell(link(f"/models/{u(m.name)}", m.name), m.name),
            cell(e(m.predictor_type or info.metadata.get("predictor_type"))),
            cell(link(f"/jobs/{u(m.training_job)}", m.training_job) if m.training_job
                 and ctx.registry.jobs.exists(m.training_job) else e(m.training_job)),
            cell(e(headline(info.metrics))),
            cell(e(size(info.size)) if info.exists else '<span class="reason">missing</span>',
                 info.size),
            cell(e(when(m.creation_time)), m.creation_time),
        ])
    body = table(["name", "predictor type", "training job", "metric", "size", "created (UTC)"],
                 rows, sortable=True, empty="no registered models")
    return html(page("Models", body, active="/models", csrf=ctx.csrf))


def _deploy_form(ctx: Ctx, model: Model, errors: dict[str, str], values: dict[str, str]) -> str:
    name = values.get("endpoint", f"{model.name}-ep"[:63])
    return (f'<form method="post" action="/models/{e(u(model.name))}/deploy" class="form" '
            'id="deploy-form">' + csrf_field(ctx.csrf)
            + field("endpoint", "Endpoint name", text_input("endpoint", name), errors)
            + field("workers", "Workers", text_input("workers", values.get("workers", "1"),
                                                     type="number", attrs='min="1" max="64"'),
                    errors)
            + '<button type="submit">Deploy</button></form>')


def _page(ctx: Ctx, model: Model, errors: dict[str, str] | None = None,
          values: dict[str, str] | None = None, status_code: int = 200) -> Reply:
    errors = errors or {}
    info = services.model_info(model)
    meta = info.metadata
    hp = meta.get("hyperparameters") or {}
    if not hp and model.training_job and ctx.registry.jobs.exists(model.training_job):
        hp = ctx.registry.jobs.get(model.training_job).hyperparameters
    facts = [
        ("Artifact", e(model.artifact) + ("" if info.exists
                                          else ' <span class="reason">(missing)</span>')),
        ("Predictor type", e(model.predictor_type or meta.get("predictor_type"))),
        ("Training job", link(f"/jobs/{u(model.training_job)}", model.training_job)
         if model.training_job else "-"),
        ("Size", e(size(info.size))),
        ("Factors", e(meta.get("num_factors"))), ("Features", e(meta.get("feature_dim"))),
        ("Samples", e(meta.get("num_samples"))), ("Solver", e(meta.get("solver"))),
        ("Interactions", e(meta.get("interactions", "all") if meta else None)),
        ("Created", e(when(model.creation_time)) + " UTC"),
    ]
    files = table(["file", "size"], [[
        cell(link(f"/models/{u(model.name)}/files/" + "/".join(u(p) for p in f.path.split("/")),
             f.path), f.path),
        cell(e(size(f.size)), f.size)] for f in info.files], empty="no files")
    export = ('<div class="actions">'
              + post_button(f"/models/{u(model.name)}/export", "Download .npz", ctx.csrf,
                            fields={"format": "npz"})
              + post_button(f"/models/{u(model.name)}/export", "Download SageMaker model.tar.gz",
                            ctx.csrf, fields={"format": "sagemaker"})
              + "</div>")
    if errors.get("export"):
        export += (f'<div class="field-error" id="error-export" role="alert">'
                   f'{e(errors["export"])}</div>')
    serving = [ep for ep in services.list_endpoints(ctx.registry)
               if ep.model == model.artifact or ep.model_name == model.name]
    eps = table(["endpoint", "status", "url"], [[
        cell(link(f"/endpoints/{u(ep.name)}", ep.name)), cell(status(ep.status)),
        cell(e(ep.url))] for ep in serving], empty="not deployed")
    body = ('<div class="two">' + section("Model", kv(facts))
            + section("Metrics", mapping(info.metrics) if info.metrics
                      else '<p class="muted">none recorded</p>') + "</div>"
            + '<div class="two">' + section("Export", export)
            + section("Deploy", _deploy_form(ctx, model, errors, values or {}) + eps)
            + "</div>"
            + '<div class="two">' + section("Hyperparameters", mapping(hp))
            + section("Files", files) + "</div>")
    return html(page(f"Model {model.name}", body, active="/models", csrf=ctx.csrf), status_code)


def model_page(ctx: Ctx) -> Reply:
    return _page(ctx, ctx.registry.models.get(ctx.param("name")))


def model_file(ctx: Ctx) -> Reply:
    model = ctx.registry.models.get(ctx.param("name"))
    target = security.inside(model.artifact, ctx.param("path"))
    return file_reply(target, target.name)


def export(ctx: Ctx) -> Reply:
    model = ctx.registry.models.get(ctx.param("name"))
    fmt = ctx.form.get("format", "")
    if fmt not in services.EXPORT_FORMATS:
        return _page(ctx, model, {"export": f"format must be npz or sagemaker; got {fmt!r}."},
                     status_code=400)
    try:
        out = services.export_model(ctx.registry, model, fmt)
    except FMError as exc:
        return _page(ctx, model, {"export": str(exc)}, status_code=400)
    rel = out.resolve().relative_to(ctx.registry.home.resolve())
    return redirect("/files/" + "/".join(u(p) for p in rel.parts))


def deploy(ctx: Ctx) -> Reply:
    model = ctx.registry.models.get(ctx.param("name"))
    values = {"endpoint": ctx.form.get("endpoint", "").strip(),
              "workers": ctx.form.get("workers", "1").strip()}
    errors: dict[str, str] = {}
    if not valid_name(values["endpoint"]):
        errors["endpoint"] = ("endpoint name must be 1-63 letters, digits and hyphens, "
                              "starting with a letter or digit and not ending with a hyphen.")
    try:
        workers = int(values["workers"])
        if not 1 <= workers <= 64:
            raise ValueError
    except ValueError:
        errors["workers"] = f"workers must be an integer from 1 to 64; got {values['workers']!r}."
        workers = 1
    if not errors:
        try:
            services.deploy(ctx.registry, model, values["endpoint"], workers=workers)
        except FMError as exc:
            errors["endpoint"] = str(exc)
    if errors:
        return _page(ctx, model, errors, values, status_code=400)
    return redirect(f"/endpoints/{u(values['endpoint'])}")
