"""SageMaker batch transform jobs over :mod:`fmkit.jobs.transform`.

The input prefix and output path are the object files behind them; SageMaker's output
naming (``<S3OutputPath>/<input file>.out``) comes from fmkit's transform itself.
"""

from __future__ import annotations

from typing import Any

from fmkit.errors import RegistryError
from fmkit.sagemaker_api import locations
from fmkit.sagemaker_api.context import Context, page, require
from fmkit.sagemaker_api.hosting import model_artifact
from fmkit.sagemaker_api.protocol import ApiError, validation

_SPLIT = {"None": None, "Line": "Line", "RecordIO": "RecordIO", "TFRecord": None}


def _missing(name: str) -> ApiError:
    return validation(f'Could not find transform job "{name}".')


def create_transform_job(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    from fmkit.jobs import transform

    require(body, "TransformJobName", "ModelName", "TransformInput", "TransformOutput",
            "TransformResources")
    name = body["TransformJobName"]
    try:
        ctx.registry.transforms.get(name)
        raise ApiError("ResourceInUse", f"Job name must be unique within an AWS account and "
                       f"region, and a job with this name already exists "
                       f"({ctx.arn('transform-job', name)})")
    except RegistryError:
        pass
    model_dir = model_artifact(ctx, body["ModelName"])
    tin = body["TransformInput"] or {}
    source = ((tin.get("DataSource") or {}).get("S3DataSource") or {})
    uri = source.get("S3Uri") or ""
    if source.get("S3DataType", "S3Prefix") == "ManifestFile":
        raise validation("TransformInput: ManifestFile is not supported locally; use an "
                         "S3Prefix.")
    if (tin.get("CompressionType") or "None") != "None":
        raise validation("TransformInput.CompressionType must be None locally.")
    bucket, prefix = locations.split(uri)
    keys = ctx.store.keys(bucket, prefix) if ctx.store.bucket_exists(bucket) else []
    if not keys:
        raise validation(f"No S3 objects found under S3 URL {uri!r} given in input data "
                         "source.")
    path = locations.folder(ctx.store, uri)
    if path.is_file():
        input_path = str(path)
    elif path.is_dir() and all(k.startswith(prefix.rstrip("/") + "/") for k in keys):
        input_path = str(path)
    else:  # a partial name such as s3://b/batch/part- : the matching files
        input_path = str(path) + "*"
    tout = body["TransformOutput"] or {}
    output = locations.folder(ctx.store, tout.get("S3OutputPath") or "")
    payload_mb = body.get("MaxPayloadInMB")
    strategy = {"MultiRecord": "MultiRecord", "SingleRecord": "SingleRecord"}.get(
        body.get("BatchStrategy") or "MultiRecord")
    if strategy is None:
        raise validation(f"BatchStrategy must be MultiRecord or SingleRecord; got "
                         f"{body.get('BatchStrategy')!r}.")
    request = transform.TransformRequest(
        model_dir=model_dir, input=input_path, output=str(output),
        content_type=tin.get("ContentType") or "application/x-recordio-protobuf",
        accept=tout.get("Accept") or "application/jsonlines",
        split_type=_SPLIT.get(tin.get("SplitType") or "None"),
        batch_strategy=strategy,
        max_payload_bytes=int(float(payload_mb) * 1024 * 1024) if payload_mb
        else transform.DEFAULT_MAX_PAYLOAD_BYTES,
        assemble_with=tout.get("AssembleWith") or "None", name=name, source="sagemaker-api")
    def start() -> None:
        output.mkdir(parents=True, exist_ok=True)
        transform.start(request, registry=ctx.registry)

    ctx.create("transform-job", name, {k: v for k, v in body.items() if k != "Tags"}
               | {"_region": ctx.region}, start)
    ctx.state.add_tags(ctx.arn("transform-job", name), body.get("Tags") or [])
    return {"TransformJobArn": ctx.arn("transform-job", name)}


def _describe(ctx: Context, job: Any) -> dict[str, Any]:
    stored = ctx.state.get("transform-job", job.name) or {}
    out: dict[str, Any] = {
        "TransformJobName": job.name, "TransformJobArn": ctx.arn("transform-job", job.name),
        "TransformJobStatus": job.status,
        "ModelName": stored.get("ModelName") or "",
        "TransformInput": stored.get("TransformInput") or {"DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": locations.to_uri(ctx.store, job.input)}}},
        "TransformOutput": stored.get("TransformOutput") or {
            "S3OutputPath": locations.to_uri(ctx.store, job.output)},
        "TransformResources": stored.get("TransformResources") or {
            "InstanceType": "ml.m5.large", "InstanceCount": 1},
        "CreationTime": job.start_time, "TransformStartTime": job.start_time,
    }
    for key in ("BatchStrategy", "MaxPayloadInMB", "MaxConcurrentTransforms", "Environment",
                "DataProcessing"):
        if stored.get(key) is not None:
            out[key] = stored[key]
    if job.end_time is not None:
        out["TransformEndTime"] = job.end_time
    if job.failure_reason and job.status == "Failed":
        out["FailureReason"] = job.failure_reason[:1024]
    return out


def _load(ctx: Context, name: str) -> Any:
    from fmkit.jobs import transform

    try:
        return transform.describe(name, registry=ctx.registry)
    except RegistryError:
        raise _missing(name) from None


def describe_transform_job(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    require(body, "TransformJobName")
    return _describe(ctx, _load(ctx, body["TransformJobName"]))


def list_transform_jobs(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    contains = (body.get("NameContains") or "").lower()
    want = body.get("StatusEquals")
    rows = []
    for j in ctx.registry.transforms.list():
        if (contains and contains not in j.name.lower()) or (want and j.status != want):
            continue
        row = {"TransformJobName": j.name, "TransformJobArn": ctx.arn("transform-job", j.name),
               "CreationTime": j.start_time, "TransformJobStatus": j.status}
        if j.end_time is not None:
            row["TransformEndTime"] = j.end_time
        if j.failure_reason and j.status == "Failed":
            row["FailureReason"] = j.failure_reason[:1024]
        rows.append(row)
    rows.sort(key=lambda x: x["CreationTime"],
              reverse=(body.get("SortOrder") or "Descending") == "Descending")
    chunk, token = page(rows, body)
    out: dict[str, Any] = {"TransformJobSummaries": chunk}
    if token:
        out["NextToken"] = token
    return out

