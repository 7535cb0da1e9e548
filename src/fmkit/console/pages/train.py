"""Start a training job from a form: channels, predictor type and hyperparameters by their
SageMaker names, validated as the CLI validates them (``fmkit.jobs.training.validate``),
with each error shown beside its field."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fmkit.config import HYPERPARAMETERS, OPTIMIZERS, PREDICTOR_TYPES, SOLVERS, FMConfig
from fmkit.console.context import Ctx, Reply, html, redirect
from fmkit.console.html import csrf_field, e, field, page, section, select, text_input, u
from fmkit.errors import FMError
from fmkit.registry.records import make_name, valid_name

CONTENT_TYPES = (("", "auto (from the file names)"),
                 ("application/x-recordio-protobuf", "application/x-recordio-protobuf"),
                 ("text/libsvm", "text/libsvm"), ("text/csv", "text/csv"),
                 ("application/x-npz", "application/x-npz"))
#: hyperparameters with their own input; the rest go in the free-form box
SHOWN = ("num_factors", "epochs", "mini_batch_size", "bias_lr", "linear_lr", "factors_lr",
         "bias_wd", "linear_wd", "factors_wd", "early_stopping_patience", "seed")
CHOICES = {"solver": SOLVERS, "optimizer": OPTIMIZERS}
CHANNEL_FIELDS = ("train", "validation", "test")


def _default(name: str, predictor_type: str, defaults: str) -> Any:
    param = HYPERPARAMETERS[name]
    value = param.sagemaker if defaults == "sagemaker" else param.fmkit
    if isinstance(value, dict):
        value = value.get(predictor_type, value.get("regressor"))
    return value


def _placeholder(name: str, predictor_type: str, defaults: str) -> str:
    value = _default(name, predictor_type, defaults)
    if value is None:
        return "required" if HYPERPARAMETERS[name].required else "unset"
    return f"default {value}"


def _defaults_attr(name: str) -> str:
    """``data-defaults``: the default of ``name`` for each defaults set and predictor type,
    so that console.js can show the right one when either select changes."""
    table = {f"{d}/{p}": _placeholder(name, p, d) for d in ("fmkit", "sagemaker")
             for p in PREDICTOR_TYPES}
    return f"data-defaults='{e(json.dumps(table))}'"


def render(ctx: Ctx, values: dict[str, str], errors: dict[str, str], status_code: int = 200
           ) -> Reply:
    pt = values.get("predictor_type") or "binary_classifier"
    defaults = values.get("defaults") or "fmkit"
    general = (
        field("name", "Job name", text_input("name", values.get("name"),
                                             placeholder="generated when empty"), errors,
              hint="1-63 letters, digits and hyphens (SageMaker's rule)")
        + "".join(field(c, f"{c} channel", text_input(c, values.get(c),
                                                         placeholder="file, folder, glob or s3://"),
                        errors, hint="required" if c == "train" else "optional")
                  for c in CHANNEL_FIELDS)
        + field("content_type", "Content type",
                select("content_type", CONTENT_TYPES, values.get("content_type", "")), errors)
        + field("vocabulary", "Vocabulary", text_input("vocabulary", values.get("vocabulary"),
                                                       placeholder="default: next to train"),
                errors)
        + field("model_dir", "Model folder",
                text_input("model_dir", values.get("model_dir"),
                           placeholder="default: FMKIT_HOME/jobs/NAME/model"), errors)
    )
    hyper = (
        field("predictor_type", "predictor_type",
              select("predictor_type", [(p, p) for p in PREDICTOR_TYPES], pt), errors)
        + field("defaults", "Defaults", select("defaults", [("fmkit", "fmkit (tuned)"),
                                                            ("sagemaker", "sagemaker")],
                                               defaults), errors)
        + "".join(field(n, n, select(n, [("", f"default ({_default(n, pt, defaults)})")]
                                     + [(c, c) for c in CHOICES[n]], values.get(n, "")), errors)
                  for n in CHOICES)
        + "".join(field(n, n, text_input(n, values.get(n),
                                         placeholder=_placeholder(n, pt, defaults),
                                         attrs=_defaults_attr(n)),
                        errors, hint=HYPERPARAMETERS[n].rule) for n in SHOWN)
        + field("extra", "More hyperparameters",
                '<textarea id="f-extra" name="extra" rows="4" '
                'placeholder="name=value, one a line">'
                f'{e(values.get("extra", ""))}</textarea>', errors,
                hint="any SageMaker FM hyperparameter, e.g. bias_init_method=normal")
    )
    top = ""
    if errors.get("_form"):
        top = ('<div class="field-error form-error" id="error-_form" role="alert">'
               f'{e(errors["_form"])}</div>')
    body = (top + '<form method="post" action="/train" class="form" id="train-form" novalidate>'
            + csrf_field(ctx.csrf) + '<div class="two">' + section("Job and data", general)
            + section("Hyperparameters (SageMaker names)", hyper) + "</div>"
            + '<button type="submit" class="primary">Start training job</button></form>')
    return html(page("Start a training job", body, active="/train", csrf=ctx.csrf), status_code)


def form_page(ctx: Ctx) -> Reply:
    source = ctx.arg("from")
    values = clone_values(ctx, source) if source else {}
    return render(ctx, {**values, **{k: v for k, v in ctx.query.items() if k != "from"}}, {})


def clone_values(ctx: Ctx, name: str) -> dict[str, str]:
    """Form values that start a job like ``name`` (SageMaker Studio's "Clone"): its channels,
    content type, vocabulary and the hyperparameters it was given (not the defaults)."""
    job = ctx.registry.jobs.get(name)
    request = job.request or {}
    channels = request.get("channels") or job.channels or {}
    given = dict(request.get("hyperparameters") or {}) if request else dict(job.hyperparameters)
    values: dict[str, str] = {}
    for c in CHANNEL_FIELDS:
        spec = channels.get(c)
        uri = spec.get("uri") if isinstance(spec, dict) else spec
        if uri:
            values[c] = str(uri)
    for key in ("content_type", "vocabulary"):
        if request.get(key):
            values[key] = str(request[key])
    if request.get("defaults") in ("fmkit", "sagemaker"):
        values["defaults"] = request["defaults"]
    extra = []
    for key, value in sorted(given.items()):
        if value is None or key not in HYPERPARAMETERS or (key == "feature_dim" and not request):
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if key in (*SHOWN, *CHOICES, "predictor_type"):
            values[key] = text
        else:
            extra.append(f"{key}={text}")
    values["extra"] = "\n".join(extra)
    return values


def _field_of(message: str, names: list[str]) -> str | None:
    """The form field a validation message is about (the first hyperparameter it names)."""
    best: tuple[int, str] | None = None
    for n in names:
        m = re.search(rf"(?<![a-z_]){re.escape(n)}(?![a-z_])", message)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), n)
    return best[1] if best else None


def parse(ctx: Ctx) -> tuple[dict[str, str], dict[str, Any], dict[str, str]]:
    """Return (form values, hyperparameters, errors by field)."""
    values = {k: v.strip() if k != "extra" else v for k, v in ctx.form.items()
              if k != "csrf_token"}
    errors: dict[str, str] = {}
    hp: dict[str, Any] = {}
    pt = values.get("predictor_type", "")
    if pt not in PREDICTOR_TYPES:
        errors["predictor_type"] = ("predictor_type must be 'binary_classifier' or "
                                    f"'regressor'; got {pt!r}.")
    defaults = values.get("defaults", "fmkit")
    if defaults not in ("fmkit", "sagemaker"):
        errors["defaults"] = f"defaults must be 'fmkit' or 'sagemaker'; got {defaults!r}."
        defaults = "fmkit"
    hp["predictor_type"] = pt
    for n in (*SHOWN, *CHOICES):
        if values.get(n):
            hp[n] = values[n]
    for lineno, line in enumerate(values.get("extra", "").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, eq, value = line.partition("=")
        key = key.strip()
        if not eq or not key:
            errors["extra"] = f"line {lineno}: expected name=value; got {line.strip()!r}."
            break
        if key not in HYPERPARAMETERS:
            errors["extra"] = f"line {lineno}: unknown hyperparameter {key!r}."
            break
        hp[key] = value.strip()
    # each value alone first, so that every bad field gets its own message
    for n, value in hp.items():
        if n == "predictor_type" or n in errors:
            continue
        try:
            FMConfig.from_values({"predictor_type": pt if pt in PREDICTOR_TYPES else "regressor",
                                  n: value}, defaults="fmkit")
        except FMError as exc:
            where = n if n in (*SHOWN, *CHOICES) else "extra"
            errors.setdefault(where, str(exc))
    name = values.get("name", "")
    if name:
        if not valid_name(name):
            errors["name"] = ("training job name must be 1-63 letters, digits and hyphens, "
                              "starting with a letter or digit and not ending with a hyphen.")
        elif ctx.registry.jobs.exists(name):
            errors["name"] = f"a training job named {name!r} already exists; choose another name."
    if not values.get("train"):
        errors["train"] = "the train channel is required: a file, folder, glob or s3:// prefix."
    for c in CHANNEL_FIELDS:
        uri = values.get(c, "")
        if uri and "://" not in uri and not any(ch in uri for ch in "*?[") \
                and not Path(uri).expanduser().exists():
            errors.setdefault(c, f"{uri} does not exist.")
    vocab = values.get("vocabulary", "")
    if vocab and "://" not in vocab and not Path(vocab).expanduser().is_file():
        errors["vocabulary"] = f"{vocab} is not a file."
    return values, hp, errors


def submit(ctx: Ctx) -> Reply:
    values, hp, errors = parse(ctx)
    if errors:
        return render(ctx, values, errors, 400)
    from fmkit.jobs import training

    name = values.get("name") or make_name("console-train")
    model_dir = values.get("model_dir") or str(ctx.registry.job_dir(name) / "model")
    channels = {c: values[c] for c in CHANNEL_FIELDS if values.get(c)}
    request = training.TrainingRequest(
        channels=channels, model_dir=model_dir, hyperparameters=hp,
        defaults=values.get("defaults") or "fmkit", name=name,
        content_type=values.get("content_type") or None,
        vocabulary=values.get("vocabulary") or None, source="console")
    names = [*HYPERPARAMETERS, *CHANNEL_FIELDS, "name", "model_dir", "vocabulary",
             "content_type"]
    try:
        training.validate(request)
        job = training.start(request, registry=ctx.registry)
    except FMError as exc:
        where = _field_of(str(exc), names) or "_form"
        if where in HYPERPARAMETERS and where not in (*SHOWN, *CHOICES, "predictor_type"):
            where = "extra"
        errors[where] = str(exc)
        return render(ctx, values, errors, 400)
    return redirect(f"/jobs/{u(job.name)}")
