"""SageMaker training-job operations over :mod:`fmkit.jobs.training`.

CreateTrainingJob turns SageMaker's request into a :class:`~fmkit.jobs.training.TrainingRequest`
(SageMaker's hyperparameter strings and defaults, channels as the object files behind
them, ``<S3OutputPath>/<job>/output/model.tar.gz`` as the output tarball) and starts it in
the background; Describe reads the registry's record back in SageMaker's shape, for jobs
made by the API, by ``fmkit train`` or by a tuning job alike.
"""

from __future__ import annotations

import logging
from typing import Any

from fmkit.errors import FMError, RegistryError
from fmkit.sagemaker_api import locations
from fmkit.sagemaker_api.context import FMKIT_IMAGE, Context, check_image, page, require
from fmkit.sagemaker_api.protocol import ApiError, validation

logger = logging.getLogger(__name__)

RECORDIO = "application/x-recordio-protobuf"
#: hyperparameters the SDK or SageMaker itself adds, which the algorithm never sees
_INTERNAL_PREFIXES = ("_", "sagemaker_")
_DEFAULT_RESOURCES = {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30}


def not_found(name: str) -> ApiError:
    return validation(f'Requested resource not found: Could not find training job "{name}".')


def algorithm_hyperparameters(values: dict[str, Any] | None) -> dict[str, str]:
    """SageMaker's hyperparameter strings without the SDK's own (``_tuning_objective_metric``)."""
    return {str(k): str(v) for k, v in (values or {}).items()
            if not str(k).startswith(_INTERNAL_PREFIXES)}


def channel_specs(ctx: Context, channels: list[dict[str, Any]], *, input_mode: str,
                  role: str | None) -> dict[str, Any]:
    """Return ``InputDataConfig`` as ChannelSpecs over the object files.

    Raises
    ------
    ApiError
        A channel is malformed (ValidationException).
    locations.DataUnavailable
        Its objects are missing (the job then fails with SageMaker's ClientError).
    """
    from fmkit.jobs.channels import ChannelSpec

    specs: dict[str, Any] = {}
    for i, channel in enumerate(channels or []):
        name = channel.get("ChannelName")
        if not name:
            raise validation(f"InputDataConfig[{i}]: ChannelName is required.")
        source = (channel.get("DataSource") or {}).get("S3DataSource")
        if not source:
            raise validation(f"Channel {name!r}: only DataSource.S3DataSource is supported "
                             "locally (no FileSystemDataSource).")
        uri = source.get("S3Uri") or ""
        kind = source.get("S3DataType", "S3Prefix")
        if kind == "ManifestFile":
            files = locations.manifest_files(ctx.store, uri, region=ctx.region, role=role)
        elif kind == "S3Prefix":
            files = locations.prefix_files(ctx.store, uri, region=ctx.region, role=role)
        else:
            raise validation(f"Channel {name!r}: S3DataType {kind!r} is not supported locally; "
                             "use S3Prefix or ManifestFile.")
        if (channel.get("CompressionType") or "None") != "None":
            raise validation(f"Channel {name!r}: CompressionType "
                             f"{channel['CompressionType']!r} is not supported by "
                             "Factorization Machines.")
        content_type = channel.get("ContentType") or RECORDIO
        # Pipe/FastFile need SageMaker's agent; locally every mode reads the same files
        mode = channel.get("InputMode") or input_mode or "File"
        if mode not in ("File", "Pipe", "FastFile"):
            raise validation(f"Channel {name!r}: InputMode must be File, Pipe or FastFile; got "
                             f"{mode!r}.")
        specs[name] = ChannelSpec(uri, content_type=content_type,
                                  distribution=source.get("S3DataDistributionType")
                                  or "FullyReplicated", files=tuple(files))
    if "train" not in specs:
        raise validation("InputDataConfig must have a channel named 'train' (Factorization "
                         "Machines reads 'train' and, optionally, 'test').")
    return specs


def failure_reason(exc: BaseException) -> str:
    """SageMaker's wording for a job the algorithm refused."""
    if isinstance(exc, locations.DataUnavailable):
        return str(exc)
    return ("ClientError: Unable to initialize the algorithm. Failed to validate input data "
            f"configuration or hyperparameters. (caused by ValidationError)\n\nCaused by: {exc}")


def record_failed(ctx: Context, name: str, hyperparameters: dict[str, str], reason: str, *,
                  output_tarball: str | None, tags: dict[str, str], tuning_job: str | None = None
                  ) -> None:
    """Record a job SageMaker would accept and then fail (bad hyperparameter, no data)."""
    jobs = ctx.registry.jobs
    jobs.create(name, hyperparameters=hyperparameters, channels={},
                model_dir=str(ctx.registry.job_dir(name) / "model"),
                secondary_status="Starting", source="sagemaker-api", tags=tags,
                output_tarball=output_tarball, tuning_job=tuning_job)
    from fmkit.jobs.logs import record_line

    record_line(ctx.registry, name, reason)  # the job's log stream shows why, as on SageMaker
    jobs.finish(name, status="Failed", failure_reason=reason)


def create_training_job(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    from fmkit.jobs import training

    require(body, "TrainingJobName", "AlgorithmSpecification", "RoleArn", "OutputDataConfig",
            "ResourceConfig", "StoppingCondition")
    name = body["TrainingJobName"]
    from fmkit.registry.records import valid_name

    if not valid_name(name):
        raise validation(f"1 validation error detected: Value '{name}' at 'trainingJobName' "
                         "failed to satisfy constraint: Member must satisfy regular expression "
                         "pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
    if ctx.registry.jobs.exists(name):
        raise ApiError("ResourceInUse", f"Training job names must be unique within an AWS "
                       f"account and region, and a training job with this name already "
                       f"exists ({ctx.arn('training-job', name)})")
    algo = body["AlgorithmSpecification"]
    if algo.get("AlgorithmName"):
        raise validation("AlgorithmName (marketplace algorithms) is not supported locally; "
                         "give TrainingImage.")
    check_image(algo.get("TrainingImage"))
    output_path = (body["OutputDataConfig"] or {}).get("S3OutputPath")
    if not output_path:
        raise validation("OutputDataConfig.S3OutputPath is required.")
    resources = body["ResourceConfig"] or {}
    count = int(resources.get("InstanceCount") or 1)
    if count < 1:
        raise validation(f"ResourceConfig.InstanceCount must be >= 1; got {count}.")
    max_run = (body["StoppingCondition"] or {}).get("MaxRuntimeInSeconds")
    tags = {t["Key"]: t.get("Value", "") for t in body.get("Tags") or [] if "Key" in t}
    hps = algorithm_hyperparameters(body.get("HyperParameters"))
    tarball = f"{output_path.rstrip('/')}/{name}/output/model.tar.gz"
    tarball_file = locations.object_file(ctx.store, tarball)
    ctx.state.put("training-job", name, {k: v for k, v in body.items() if k != "Tags"}
                  | {"_region": ctx.region})
    ctx.state.add_tags(ctx.arn("training-job", name), body.get("Tags") or [])
    try:
        bucket, _ = locations.split(output_path)
        if not ctx.store.bucket_exists(bucket):
            raise locations.DataUnavailable(
                f"ClientError: Data upload failed:The output S3 bucket {bucket!r} does not "
                f"exist (OutputDataConfig.S3OutputPath {output_path}).")
        channels = channel_specs(ctx, body.get("InputDataConfig") or [],
                                 input_mode=algo.get("TrainingInputMode") or "File",
                                 role=body.get("RoleArn"))
        tarball_file.parent.mkdir(parents=True, exist_ok=True)
        request = training.TrainingRequest(
            channels=channels, model_dir=str(ctx.registry.job_dir(name) / "model"),
            hyperparameters=hps, defaults="sagemaker",
            required_hyperparameters=training.SAGEMAKER_REQUIRED, name=name,
            content_type=RECORDIO, max_run_seconds=float(max_run) if max_run else None,
            instance_count=count, output_tarball=str(tarball_file), source="sagemaker-api",
            tags=tags)
        training.start(request, registry=ctx.registry)
    except (FMError, locations.DataUnavailable) as exc:
        logger.info("training job %s refused: %s", name, exc)
        record_failed(ctx, name, hps, failure_reason(exc), output_tarball=str(tarball_file),
                      tags=tags)
    return {"TrainingJobArn": ctx.arn("training-job", name)}


def _load(ctx: Context, name: str) -> Any:
    from fmkit.jobs import training

    try:
        return training.describe(name, registry=ctx.registry)
    except RegistryError:
        raise not_found(name) from None


def _definition(ctx: Context, job: Any) -> dict[str, Any]:
    """The SageMaker request behind a job: its own, its tuning job's, or one made up for a
    job fmkit's commands started."""
    own = ctx.state.get("training-job", job.name)
    if own is not None:
        return own
    if job.tuning_job:
        tuning = ctx.state.get("tuning-job", job.tuning_job)
        if tuning is not None:
            definition = dict(tuning.get("TrainingJobDefinition") or {})
            static = algorithm_hyperparameters(definition.get("StaticHyperParameters"))
            tuned = tuned_hyperparameters(tuning, job)
            definition["HyperParameters"] = static | tuned
            definition["_region"] = tuning.get("_region")
            return definition
    return {
        "AlgorithmSpecification": {"TrainingImage": FMKIT_IMAGE, "TrainingInputMode": "File"},
        "RoleArn": f"arn:aws:iam::{ctx.arn('x', 'x').split(':')[4]}:role/fmkit-local",
        "HyperParameters": {k: str(v) for k, v in (job.hyperparameters or {}).items()},
        "InputDataConfig": [
            {"ChannelName": ch, "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": str(v if isinstance(v, str)
                                                       else v.get("uri", "")),
                "S3DataDistributionType": "FullyReplicated"}}}
            for ch, v in (job.channels or {}).items()],
        "OutputDataConfig": {"S3OutputPath": str(job.model_dir or "")},
        "ResourceConfig": dict(_DEFAULT_RESOURCES),
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
    }


def tuned_hyperparameters(tuning: dict[str, Any] | None, job: Any) -> dict[str, str]:
    """The values a trial got for its tuning job's ranges, as SageMaker's strings."""
    ranges = ((tuning or {}).get("HyperParameterTuningJobConfig") or {}).get(
        "ParameterRanges") or {}
    names = [r.get("Name") for group in ranges.values() if isinstance(group, list)
             for r in group]
    out = {}
    for n in names:
        if n in (job.hyperparameters or {}):
            v = job.hyperparameters[n]
            out[n] = repr(v) if isinstance(v, float) else str(v)
    return out


def status_of(job: Any) -> str:
    return job.status if job.status in ("InProgress", "Completed", "Failed", "Stopping",
                                        "Stopped") else "InProgress"


def describe_job(ctx: Context, job: Any) -> dict[str, Any]:
    """Return a registry TrainingJob in DescribeTrainingJob's shape."""
    d = _definition(ctx, job)
    region = d.get("_region") or ctx.region
    arn = Context(ctx.registry, ctx.store, ctx.state, region).arn
    status = status_of(job)
    resources = dict(_DEFAULT_RESOURCES) | dict(d.get("ResourceConfig") or {})
    output = dict(d.get("OutputDataConfig") or {})
    output.setdefault("KmsKeyId", "")
    stopping = dict(d.get("StoppingCondition") or {"MaxRuntimeInSeconds": 86400})
    transitions = [dict(t) for t in (job.transitions or [])]
    secondary = job.secondary_status or (transitions[-1]["Status"] if transitions else
                                         {"InProgress": "Starting"}.get(status, status))
    tarball = locations.to_uri(ctx.store, job.output_tarball) if job.output_tarball else None
    if tarball is None:
        path = output.get("S3OutputPath", "")
        tarball = (f"{path.rstrip('/')}/{job.name}/output/model.tar.gz"
                   if path.startswith("s3://") else str(job.artifact or job.model_dir or ""))
    last = max([job.start_time, job.end_time or 0.0]
               + [t.get("StartTime", 0.0) for t in transitions])
    out: dict[str, Any] = {
        "TrainingJobName": job.name,
        "TrainingJobArn": arn("training-job", job.name),
        "ModelArtifacts": {"S3ModelArtifacts": tarball},
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "HyperParameters": dict(d.get("HyperParameters") or {}),
        "AlgorithmSpecification": dict(d.get("AlgorithmSpecification") or {}),
        "RoleArn": d.get("RoleArn") or "",
        "OutputDataConfig": output,
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "CreationTime": job.start_time,
        "TrainingStartTime": job.start_time,
        "LastModifiedTime": last,
        "SecondaryStatusTransitions": transitions,
        "EnableNetworkIsolation": bool(d.get("EnableNetworkIsolation", False)),
        "EnableInterContainerTrafficEncryption":
            bool(d.get("EnableInterContainerTrafficEncryption", False)),
        "EnableManagedSpotTraining": bool(d.get("EnableManagedSpotTraining", False)),
    }
    if d.get("InputDataConfig"):
        out["InputDataConfig"] = list(d["InputDataConfig"])
    if job.tuning_job:
        out["TuningJobArn"] = arn("hyper-parameter-tuning-job", job.tuning_job)
    if job.end_time is not None:
        seconds = max(1, int(round(job.end_time - job.start_time)))
        out["TrainingEndTime"] = job.end_time
        out["TrainingTimeInSeconds"] = seconds
        out["BillableTimeInSeconds"] = seconds
    if job.failure_reason and status in ("Failed", "Stopped"):
        out["FailureReason"] = job.failure_reason[:1024]
    # SageMaker reports the algorithm's final metrics on the held-out channels
    metrics = [{"MetricName": k, "Value": float(v), "Timestamp": job.end_time or last}
               for k, v in sorted((job.final_metrics or {}).items())
               if k.startswith(("test:", "validation:")) and isinstance(v, (int, float))
               and v == v]
    if metrics:
        out["FinalMetricDataList"] = metrics
    if d.get("DebugHookConfig"):
        out["DebugHookConfig"] = d["DebugHookConfig"]
    return out


def describe_training_job(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    require(body, "TrainingJobName")
    return describe_job(ctx, _load(ctx, body["TrainingJobName"]))


def summary(ctx: Context, job: Any) -> dict[str, Any]:
    d = describe_job(ctx, job)
    out = {k: d[k] for k in ("TrainingJobName", "TrainingJobArn", "CreationTime",
                             "TrainingJobStatus", "SecondaryStatus", "LastModifiedTime")}
    if "TrainingEndTime" in d:
        out["TrainingEndTime"] = d["TrainingEndTime"]
    return out


def _filtered(jobs: list[Any], body: dict[str, Any]) -> list[Any]:
    contains = (body.get("NameContains") or "").lower()
    status = body.get("StatusEquals")
    after, before = body.get("CreationTimeAfter"), body.get("CreationTimeBefore")
    out = []
    for j in jobs:
        if contains and contains not in j.name.lower():
            continue
        if status and status_of(j) != status:
            continue
        if after is not None and not j.start_time > float(after):
            continue
        if before is not None and not j.start_time < float(before):
            continue
        out.append(j)
    key = body.get("SortBy") or "CreationTime"
    sort_key = {"Name": lambda j: j.name, "Status": lambda j: status_of(j)}.get(
        key, lambda j: j.start_time)
    return sorted(out, key=sort_key, reverse=(body.get("SortOrder") or "Descending")
                  == "Descending")


def list_training_jobs(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    jobs = _filtered(list(ctx.registry.jobs.list()), body)
    chunk, token = page(jobs, body)
    out: dict[str, Any] = {"TrainingJobSummaries": [summary(ctx, j) for j in chunk]}
    if token:
        out["NextToken"] = token
    return out


def stop_training_job(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    from fmkit.jobs import training

    require(body, "TrainingJobName")
    job = _load(ctx, body["TrainingJobName"])
    if job.status in ("Completed", "Failed", "Stopped"):
        raise validation(f"The request was rejected because the training job is in status "
                         f"{job.status}.")
    training.stop(job.name, registry=ctx.registry)
    return {}
