"""SageMaker hyperparameter tuning jobs over :mod:`fmkit.jobs.tuning`.

Trials are real training jobs (``<tuning job>-NNN``), describable and deployable: their
DescribeTrainingJob answer is built from the tuning job's TrainingJobDefinition, and their
``model.tar.gz`` lands at ``<S3OutputPath>/<trial>/output/model.tar.gz``.
"""

from __future__ import annotations

import logging
from typing import Any

from fmkit.errors import RegistryError
from fmkit.sagemaker_api import locations
from fmkit.sagemaker_api.context import Context, check_image, page, require
from fmkit.sagemaker_api.protocol import ApiError, validation
from fmkit.sagemaker_api.training import (
    RECORDIO,
    algorithm_hyperparameters,
    channel_specs,
    status_of,
    tuned_hyperparameters,
)

logger = logging.getLogger(__name__)

_STRATEGIES = {"Bayesian": "bayesian", "Random": "random", "Hyperband": "hyperband"}


def _missing(name: str) -> ApiError:
    return ApiError("ResourceNotFound", f"Amazon SageMaker can't find a tuning job named "
                    f"{name}.")


def create_tuning_job(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    from fmkit.jobs import tuning

    require(body, "HyperParameterTuningJobName", "HyperParameterTuningJobConfig")
    name = body["HyperParameterTuningJobName"]
    config = body["HyperParameterTuningJobConfig"] or {}
    definition = body.get("TrainingJobDefinition")
    if not definition:
        raise validation("TrainingJobDefinition is required (TrainingJobDefinitions, several "
                         "algorithms in one tuning job, is not supported locally).")
    if ctx.registry.tuning.exists(name) or ctx.state.get("tuning-job", name) is not None:
        raise ApiError("ResourceInUse", f"Hyperparameter tuning job names must be unique "
                       f"within an AWS account and region, and a tuning job with this name "
                       f"already exists ({ctx.arn('hyper-parameter-tuning-job', name)})")
    check_image((definition.get("AlgorithmSpecification") or {}).get("TrainingImage"))
    strategy = config.get("Strategy") or "Bayesian"
    if strategy not in _STRATEGIES:
        raise validation(f"Strategy {strategy!r} is not supported locally; use "
                         f"{', '.join(_STRATEGIES)}.")
    objective = config.get("HyperParameterTuningJobObjective") or {}
    limits = config.get("ResourceLimits") or {}
    output_path = (definition.get("OutputDataConfig") or {}).get("S3OutputPath")
    if not output_path:
        raise validation("TrainingJobDefinition.OutputDataConfig.S3OutputPath is required.")
    try:
        channels = channel_specs(ctx, definition.get("InputDataConfig") or [],
                                 input_mode=(definition.get("AlgorithmSpecification") or {})
                                 .get("TrainingInputMode") or "File",
                                 role=definition.get("RoleArn"))
    except locations.DataUnavailable as exc:
        raise validation(str(exc).replace("ClientError: ", "")) from None
    max_run = (definition.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    output = locations.folder(ctx.store, output_path)
    request = tuning.TuningRequest(
        channels=channels,
        static_hyperparameters=algorithm_hyperparameters(
            definition.get("StaticHyperParameters")),
        ranges=config.get("ParameterRanges") or {},
        objective=objective.get("MetricName"),
        direction=(objective.get("Type") or "").lower() or None,
        strategy=_STRATEGIES[strategy],
        max_jobs=int(limits.get("MaxNumberOfTrainingJobs") or 1),
        max_parallel_jobs=int(limits.get("MaxParallelTrainingJobs") or 1),
        early_stopping=config.get("TrainingJobEarlyStoppingType") or "Off",
        name=name, max_run_seconds=float(max_run) if max_run else None,
        keep_models="all", defaults="sagemaker", content_type=RECORDIO,
        trial_output_tarballs=str(output), source="sagemaker-api")
    def start() -> None:
        output.mkdir(parents=True, exist_ok=True)
        tuning.start(request, registry=ctx.registry)

    ctx.create("tuning-job", name, {k: v for k, v in body.items() if k != "Tags"}
               | {"_region": ctx.region}, start)
    ctx.state.add_tags(ctx.arn("hyper-parameter-tuning-job", name), body.get("Tags") or [])
    return {"HyperParameterTuningJobArn": ctx.arn("hyper-parameter-tuning-job", name)}


def _load(ctx: Context, name: str) -> Any:
    try:
        return ctx.registry.tuning.get(name)
    except RegistryError:
        raise _missing(name) from None


def _counters(trials: list[Any]) -> tuple[dict[str, int], dict[str, int]]:
    status = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0,
              "Stopped": 0}
    objective = {"Succeeded": 0, "Pending": 0, "Failed": 0}
    for t in trials:
        s = status_of(t)
        if s == "Failed":
            status["NonRetryableError"] += 1
        elif s in ("InProgress", "Stopping"):
            status["InProgress"] += 1
        else:
            status[s] += 1
        if t.objective_value is not None:
            objective["Succeeded"] += 1
        elif s in ("InProgress", "Stopping"):
            objective["Pending"] += 1
        else:
            objective["Failed"] += 1
    return status, objective


def trial_summary(ctx: Context, job: Any, stored: dict[str, Any] | None,
                  metric: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "TrainingJobName": job.name, "TrainingJobArn": ctx.arn("training-job", job.name),
        "TuningJobName": job.tuning_job, "CreationTime": job.start_time,
        "TrainingStartTime": job.start_time, "TrainingJobStatus": status_of(job),
        "TunedHyperParameters": tuned_hyperparameters(stored, job),
        "ObjectiveStatus": "Succeeded" if job.objective_value is not None else
        ("Pending" if status_of(job) == "InProgress" else "Failed"),
    }
    if job.end_time is not None:
        out["TrainingEndTime"] = job.end_time
    if job.failure_reason and status_of(job) == "Failed":
        out["FailureReason"] = job.failure_reason[:1024]
    if job.objective_value is not None:
        out["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "MetricName": metric, "Value": float(job.objective_value)}
    return out


def _status(record: Any) -> str:
    if record.status == "InProgress" and record.stop_requested:
        return "Stopping"
    return record.status


def describe_tuning_job(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    require(body, "HyperParameterTuningJobName")
    name = body["HyperParameterTuningJobName"]
    record = _load(ctx, name)
    stored = ctx.state.get("tuning-job", name) or {}
    trials = list(ctx.registry.tuning.trials(name))
    counters, objectives = _counters(trials)
    config = stored.get("HyperParameterTuningJobConfig") or {
        "Strategy": record.strategy.capitalize(),
        "HyperParameterTuningJobObjective": {"Type": record.direction.capitalize(),
                                             "MetricName": record.objective_metric},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": record.max_jobs,
                           "MaxParallelTrainingJobs": record.max_parallel_jobs}}
    metric = record.objective_metric
    times = [record.start_time] + [t.end_time or t.start_time for t in trials]
    out: dict[str, Any] = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobArn": ctx.arn("hyper-parameter-tuning-job", name),
        "HyperParameterTuningJobConfig": config,
        "HyperParameterTuningJobStatus": _status(record),
        "CreationTime": record.start_time, "LastModifiedTime": max(times),
        "TrainingJobStatusCounters": counters, "ObjectiveStatusCounters": objectives,
    }
    if stored.get("TrainingJobDefinition"):
        out["TrainingJobDefinition"] = stored["TrainingJobDefinition"]
    if record.end_time is not None:
        out["HyperParameterTuningEndTime"] = record.end_time
    if record.failure_reason and record.status == "Failed":
        out["FailureReason"] = record.failure_reason[:1024]
    if record.best_training_job:
        best = next((t for t in trials if t.name == record.best_training_job), None)
        if best is not None:
            summary = trial_summary(ctx, best, stored, metric)
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "MetricName": metric, "Value": float(record.best_objective_value
                                                     if record.best_objective_value is not None
                                                     else best.objective_value or 0.0)}
            out["BestTrainingJob"] = summary
    return out


def list_tuning_jobs(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    contains = (body.get("NameContains") or "").lower()
    want = body.get("StatusEquals")
    rows = []
    for r in ctx.registry.tuning.list():
        if (contains and contains not in r.name.lower()) or (want and _status(r) != want):
            continue
        counters, objectives = _counters(list(ctx.registry.tuning.trials(r.name)))
        row = {"HyperParameterTuningJobName": r.name,
               "HyperParameterTuningJobArn": ctx.arn("hyper-parameter-tuning-job", r.name),
               "HyperParameterTuningJobStatus": _status(r),
               "Strategy": r.strategy.capitalize(), "CreationTime": r.start_time,
               "TrainingJobStatusCounters": counters, "ObjectiveStatusCounters": objectives,
               "ResourceLimits": {"MaxNumberOfTrainingJobs": r.max_jobs,
                                  "MaxParallelTrainingJobs": r.max_parallel_jobs}}
        if r.end_time is not None:
            row["HyperParameterTuningEndTime"] = r.end_time
        rows.append(row)
    rows.sort(key=lambda x: x["CreationTime"],
              reverse=(body.get("SortOrder") or "Descending") == "Descending")
    chunk, token = page(rows, body)
    out: dict[str, Any] = {"HyperParameterTuningJobSummaries": chunk}
    if token:
        out["NextToken"] = token
    return out


def list_trials(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    require(body, "HyperParameterTuningJobName")
    name = body["HyperParameterTuningJobName"]
    record = _load(ctx, name)
    stored = ctx.state.get("tuning-job", name)
    trials = list(ctx.registry.tuning.trials(name))
    if body.get("StatusEquals"):
        trials = [t for t in trials if status_of(t) == body["StatusEquals"]]
    if body.get("SortBy") == "FinalObjectiveMetricValue":
        sign = -1 if record.direction == "maximize" else 1
        trials.sort(key=lambda t: (t.objective_value is None,
                                   sign * (t.objective_value or 0.0)))
        if body.get("SortOrder") == "Descending":
            trials.reverse()
    elif body.get("SortBy") == "Name":
        trials.sort(key=lambda t: t.name, reverse=body.get("SortOrder") == "Descending")
    else:
        trials.sort(key=lambda t: t.start_time, reverse=body.get("SortOrder") != "Ascending")
    chunk, token = page(trials, body)
    out: dict[str, Any] = {"TrainingJobSummaries": [
        trial_summary(ctx, t, stored, record.objective_metric) for t in chunk]}
    if token:
        out["NextToken"] = token
    return out


def stop_tuning_job(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    from fmkit.jobs import tuning

    require(body, "HyperParameterTuningJobName")
    record = _load(ctx, body["HyperParameterTuningJobName"])
    if record.status != "InProgress":
        raise validation(f"The request was rejected because the tuning job is in status "
                         f"{record.status}.")
    tuning.stop(record.name, registry=ctx.registry)
    return {}
