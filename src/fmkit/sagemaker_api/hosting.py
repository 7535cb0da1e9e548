"""SageMaker models, endpoint configurations and endpoints over the registry and
:mod:`fmkit.jobs.endpoints`.

A model is a registry model (so ``fmkit models list`` shows it) plus its SageMaker
definition (image, ModelDataUrl, environment) here; an endpoint is a registry endpoint, a
``fmkit serve`` process started in the background (Creating -> InService | Failed), plus
the configuration it runs. Models and endpoints made by fmkit's own commands are described
too, with a made-up definition.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fmkit.errors import FMError, RegistryError
from fmkit.sagemaker_api import locations
from fmkit.sagemaker_api.context import FMKIT_IMAGE, Context, check_image, page, require
from fmkit.sagemaker_api.protocol import ApiError, validation

logger = logging.getLogger(__name__)

_VARIANT = "AllTraffic"


# ---------------------------------------------------------------------------------- models
def _model_missing(ctx: Context, name: str) -> ApiError:
    return validation(f'Could not find model "{ctx.arn("model", name)}".')


def model_definition(ctx: Context, name: str) -> dict[str, Any] | None:
    """The SageMaker definition of model ``name`` (made up for registry-only models)."""
    own = ctx.state.get("model", name)
    if own is not None:
        return own
    try:
        record = ctx.registry.models.get(name)
    except RegistryError:
        return None
    return {"ModelName": name, "PrimaryContainer": {
        "Image": FMKIT_IMAGE, "ModelDataUrl": locations.to_uri(ctx.store, record.artifact)},
        "ExecutionRoleArn": "", "_creation_time": record.creation_time,
        "_artifact": record.artifact}


def model_artifact(ctx: Context, name: str) -> str:
    """The local model (fmkit folder or model.tar.gz) model ``name`` serves."""
    d = model_definition(ctx, name)
    if d is None:
        raise _model_missing(ctx, name)
    if d.get("_artifact"):
        return str(d["_artifact"])
    url = (d.get("PrimaryContainer") or {}).get("ModelDataUrl") or ""
    return str(locations.object_file(ctx.store, url))


def _container(body: dict[str, Any]) -> dict[str, Any]:
    container = body.get("PrimaryContainer")
    if not container:
        containers = body.get("Containers") or []
        if len(containers) != 1:
            raise validation("Give one PrimaryContainer (or one entry in Containers): an "
                             "inference pipeline is not supported locally.")
        container = containers[0]
    return dict(container)


def create_model(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    require(body, "ModelName")
    name = body["ModelName"]
    container = _container(body)
    check_image(container.get("Image"), what="Image")
    url = container.get("ModelDataUrl") or \
        ((container.get("ModelDataSource") or {}).get("S3DataSource") or {}).get("S3Uri")
    if not url:
        raise validation("PrimaryContainer.ModelDataUrl is required: the s3:// URI of the "
                         "model.tar.gz a training job wrote.")
    if ctx.state.get("model", name) is not None or _registered(ctx, name):
        raise validation(f'Cannot create already existing model "{ctx.arn("model", name)}".')
    path = locations.object_file(ctx.store, url)
    if not path.exists():
        raise validation(f"Could not find model data at {url}.")
    container["ModelDataUrl"] = url
    ctx.create("model", name, {k: v for k, v in body.items() if k not in ("Tags",)}
               | {"PrimaryContainer": container, "_region": ctx.region},
               lambda: ctx.registry.models.register(name, str(path),
                                                    training_job=_job_of(ctx, url)))
    ctx.state.add_tags(ctx.arn("model", name), body.get("Tags") or [])
    return {"ModelArn": ctx.arn("model", name)}


def _registered(ctx: Context, name: str) -> bool:
    try:
        ctx.registry.models.get(name)
    except RegistryError:
        return False
    return True


def _job_of(ctx: Context, url: str) -> str | None:
    """The training job that wrote ``url`` (``.../<job>/output/model.tar.gz``), if known."""
    parts = url.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-2] == "output" and ctx.registry.jobs.exists(parts[-3]):
        return parts[-3]
    return None


def describe_model(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    require(body, "ModelName")
    name = body["ModelName"]
    d = model_definition(ctx, name)
    if d is None:
        raise _model_missing(ctx, name)
    out = {"ModelName": name, "ModelArn": ctx.arn("model", name),
           "CreationTime": d["_creation_time"],
           "PrimaryContainer": d.get("PrimaryContainer") or {},
           "ExecutionRoleArn": d.get("ExecutionRoleArn") or "",
           "EnableNetworkIsolation": bool(d.get("EnableNetworkIsolation", False))}
    if d.get("VpcConfig"):
        out["VpcConfig"] = d["VpcConfig"]
    return out


def list_models(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    names = set(ctx.state.names("model")) | {m.name for m in ctx.registry.models.list()}
    contains = (body.get("NameContains") or "").lower()
    found = [(n, model_definition(ctx, n)) for n in names if contains in n.lower()]
    rows = sorted(((n, d) for n, d in found if d is not None),
                  key=lambda x: x[1]["_creation_time"],
                  reverse=(body.get("SortOrder") or "Descending") == "Descending")
    chunk, token = page(rows, body)
    out: dict[str, Any] = {"Models": [{"ModelName": n, "ModelArn": ctx.arn("model", n),
                                       "CreationTime": d["_creation_time"]}
                                      for n, d in chunk]}
    if token:
        out["NextToken"] = token
    return out


def delete_model(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    require(body, "ModelName")
    name = body["ModelName"]
    found = ctx.state.remove("model", name)
    try:
        ctx.registry.models.remove(name)
        found = True
    except RegistryError:
        pass
    if not found:
        raise _model_missing(ctx, name)
    ctx.state.delete_tags(ctx.arn("model", name))
    return {}


# ---------------------------------------------------------------------------------- configs
def _config_missing(name: str) -> ApiError:
    return validation(f'Could not find endpoint configuration "{name}".')


def config_definition(ctx: Context, name: str) -> dict[str, Any] | None:
    own = ctx.state.get("endpoint-config", name)
    if own is not None:
        return own
    try:  # an endpoint `fmkit deploy` made: its configuration carries its name
        record = ctx.registry.endpoints.get(name)
    except RegistryError:
        return None
    if ctx.state.get("endpoint", name) is not None:
        return None
    return {"EndpointConfigName": name, "_creation_time": record.creation_time,
            "ProductionVariants": [{"VariantName": _VARIANT, "ModelName":
                                    record.model_name or name, "InitialInstanceCount": 1,
                                    "InstanceType": "ml.m5.large",
                                    "InitialVariantWeight": 1.0}]}


def create_endpoint_config(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    require(body, "EndpointConfigName", "ProductionVariants")
    name = body["EndpointConfigName"]
    variants = body["ProductionVariants"]
    if not isinstance(variants, list) or not variants:
        raise validation("ProductionVariants must hold at least one variant.")
    for v in variants:
        if not v.get("ModelName"):
            raise validation("Each production variant needs a ModelName.")
        if model_definition(ctx, v["ModelName"]) is None:
            raise validation(f'Could not find model "{ctx.arn("model", v["ModelName"])}".')
    if len(variants) > 1:
        logger.warning("endpoint config %s: %d variants; the local endpoint serves the first "
                       "(%s)", name, len(variants), variants[0].get("VariantName"))
    stored = {k: v for k, v in body.items() if k != "Tags"} | {"_region": ctx.region}
    if not ctx.state.add("endpoint-config", name, stored):
        raise validation(f'Cannot create already existing endpoint configuration '
                         f'"{ctx.arn("endpoint-config", name)}".')
    ctx.state.add_tags(ctx.arn("endpoint-config", name), body.get("Tags") or [])
    return {"EndpointConfigArn": ctx.arn("endpoint-config", name)}


def describe_endpoint_config(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    require(body, "EndpointConfigName")
    name = body["EndpointConfigName"]
    d = config_definition(ctx, name)
    if d is None:
        raise _config_missing(name)
    out = {"EndpointConfigName": name, "EndpointConfigArn": ctx.arn("endpoint-config", name),
           "ProductionVariants": d["ProductionVariants"], "CreationTime": d["_creation_time"]}
    for key in ("DataCaptureConfig", "KmsKeyId", "AsyncInferenceConfig"):
        if d.get(key):
            out[key] = d[key]
    return out


def delete_endpoint_config(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    require(body, "EndpointConfigName")
    name = body["EndpointConfigName"]
    if not ctx.state.remove("endpoint-config", name):
        raise _config_missing(name)
    ctx.state.delete_tags(ctx.arn("endpoint-config", name))
    return {}


# ---------------------------------------------------------------------------------- endpoints
def endpoint_missing(name: str) -> ApiError:
    return validation(f'Could not find endpoint "{name}".')


def _deploy(ctx: Context, name: str, config_name: str) -> None:
    from fmkit.jobs import endpoints

    config = config_definition(ctx, config_name)
    if config is None:
        raise _config_missing(config_name)
    variant = config["ProductionVariants"][0]
    model = variant["ModelName"]
    artifact = model_artifact(ctx, model)
    try:
        endpoints.deploy(artifact, name, wait_s=0, model_name=model, registry=ctx.registry)
    except FMError as exc:
        raise validation(f"Endpoint {name}: {exc}") from None


def create_endpoint(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    require(body, "EndpointName", "EndpointConfigName")
    name = body["EndpointName"]
    from fmkit.registry.records import valid_name

    if not valid_name(name):
        raise validation(f"1 validation error detected: Value '{name}' at 'endpointName' "
                         "failed to satisfy constraint: Member must satisfy regular expression "
                         "pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
    try:
        ctx.registry.endpoints.get(name)
        raise validation(f'Cannot create already existing endpoint '
                         f'"{ctx.arn("endpoint", name)}".')
    except RegistryError:
        pass
    config_name = body["EndpointConfigName"]
    _deploy(ctx, name, config_name)
    ctx.state.put("endpoint", name, {"EndpointConfigName": config_name,
                                     "_region": ctx.region})
    ctx.state.add_tags(ctx.arn("endpoint", name), body.get("Tags") or [])
    return {"EndpointArn": ctx.arn("endpoint", name)}


def _status(ctx: Context, name: str) -> tuple[Any, str, str | None]:
    from fmkit.jobs import endpoints

    try:
        record = endpoints.describe(name, registry=ctx.registry)
    except FMError:
        raise endpoint_missing(name) from None
    status = record.status
    mine = ctx.state.get("endpoint", name) or {}
    if mine.get("_updating"):
        if status == "Creating":
            status = "Updating"
        else:
            ctx.state.put("endpoint", name, {k: v for k, v in mine.items()
                                             if k not in ("_updating", "_creation_time")})
    return record, status, record.failure_reason if status == "Failed" else None


def describe_endpoint(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    require(body, "EndpointName")
    name = body["EndpointName"]
    record, status, reason = _status(ctx, name)
    mine = ctx.state.get("endpoint", name) or {}
    config_name = mine.get("EndpointConfigName") or name
    config = config_definition(ctx, config_name) or {}
    variants = config.get("ProductionVariants") or [{"VariantName": _VARIANT,
                                                     "InitialInstanceCount": 1}]
    model = record.model_name or variants[0].get("ModelName")
    image = ((model_definition(ctx, model) or {}).get("PrimaryContainer") or {}).get(
        "Image", FMKIT_IMAGE) if model else FMKIT_IMAGE
    count = int(variants[0].get("InitialInstanceCount") or 1)
    out: dict[str, Any] = {
        "EndpointName": name, "EndpointArn": ctx.arn("endpoint", name),
        "EndpointConfigName": config_name, "EndpointStatus": status,
        "CreationTime": record.creation_time,
        "LastModifiedTime": record.last_modified_time or record.creation_time,
        "ProductionVariants": [{
            "VariantName": variants[0].get("VariantName") or _VARIANT,
            "DeployedImages": [{"SpecifiedImage": image, "ResolvedImage": image,
                                "ResolutionTime": record.creation_time}],
            "CurrentWeight": 1.0, "DesiredWeight": 1.0,
            "CurrentInstanceCount": count if status == "InService" else 0,
            "DesiredInstanceCount": count}],
    }
    if reason:
        out["FailureReason"] = reason[:1024]
    return out


def list_endpoints(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    contains = (body.get("NameContains") or "").lower()
    want = body.get("StatusEquals")
    rows = []
    for r in ctx.registry.endpoints.list():
        if contains and contains not in r.name.lower():
            continue
        _, status, _ = _status(ctx, r.name)
        if want and status != want:
            continue
        rows.append({"EndpointName": r.name, "EndpointArn": ctx.arn("endpoint", r.name),
                     "CreationTime": r.creation_time,
                     "LastModifiedTime": r.last_modified_time or r.creation_time,
                     "EndpointStatus": status})
    rows.sort(key=lambda x: x["CreationTime"],
              reverse=(body.get("SortOrder") or "Descending") == "Descending")
    chunk, token = page(rows, body)
    out: dict[str, Any] = {"Endpoints": chunk}
    if token:
        out["NextToken"] = token
    return out


def update_endpoint(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    from fmkit.jobs import endpoints

    require(body, "EndpointName", "EndpointConfigName")
    name = body["EndpointName"]
    _status(ctx, name)
    config_name = body["EndpointConfigName"]
    if config_definition(ctx, config_name) is None:
        raise _config_missing(config_name)
    try:
        endpoints.delete(name, timeout_s=10.0, registry=ctx.registry)
    except FMError:
        raise endpoint_missing(name) from None
    _deploy(ctx, name, config_name)
    ctx.state.put("endpoint", name, {"EndpointConfigName": config_name, "_updating": True,
                                     "_region": ctx.region, "_updated": time.time()})
    return {"EndpointArn": ctx.arn("endpoint", name)}


def delete_endpoint(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    from fmkit.jobs import endpoints

    require(body, "EndpointName")
    name = body["EndpointName"]
    try:
        endpoints.delete(name, timeout_s=10.0, registry=ctx.registry)
    except FMError:
        raise endpoint_missing(name) from None
    ctx.state.remove("endpoint", name)
    ctx.state.delete_tags(ctx.arn("endpoint", name))
    return {}
