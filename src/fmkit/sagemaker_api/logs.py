"""CloudWatch Logs (JSON 1.1, ``Logs_20140328.<Op>``) over the jobs' log lines.

Log groups ``/aws/sagemaker/TrainingJobs`` and ``/aws/sagemaker/TransformJobs`` hold one
stream per job that has logged anything, named as SageMaker names them:
``<job>/algo-1-<creation epoch>``. Events come from
:func:`fmkit.jobs.training.log_events` (every line the job logged, ``#quality_metric``
ones included), timestamps in milliseconds.

The SDK's loops set the rules: DescribeLogStreams never returns ``nextToken`` (the SDK
would re-ask without it, forever), and GetLogEvents' ``nextForwardToken`` always advances
past what was returned, with an empty page once the stream is read to its end.
"""

from __future__ import annotations

from typing import Any

from fmkit.sagemaker_api.context import Context
from fmkit.sagemaker_api.protocol import ACCOUNT_ID, ApiError

TRAINING = "/aws/sagemaker/TrainingJobs"
TRANSFORM = "/aws/sagemaker/TransformJobs"
_MAX_EVENTS = 10000


def _missing_group(group: str) -> ApiError:
    return ApiError("ResourceNotFoundException", f"The specified log group does not exist: "
                    f"{group}.")


def _missing_stream(stream: str) -> ApiError:
    return ApiError("ResourceNotFoundException", f"The specified log stream does not exist: "
                    f"{stream}.")


def _log_key(group: str, job: str) -> str:
    if group == TRANSFORM:
        from fmkit.jobs.transform import log_key

        return log_key(job)
    return job


def _jobs(ctx: Context, group: str) -> list[tuple[str, float]]:
    """``(name, creation time)`` of every job of the group, by name."""
    if group == TRAINING:
        return sorted((j.name, j.start_time) for j in ctx.registry.jobs.list())
    if group == TRANSFORM:
        return sorted((j.name, j.start_time) for j in ctx.registry.transforms.list())
    raise _missing_group(group)


def _events(ctx: Context, group: str, job: str, start: int = 0,
            limit: int = _MAX_EVENTS) -> tuple[list[Any], int]:
    return ctx.registry.jobs.log_events(_log_key(group, job), start=start, limit=limit)


def stream_name(job: str, created: float) -> str:
    return f"{job}/algo-1-{int(created)}"


def _stream_job(ctx: Context, group: str, stream: str) -> str:
    job = stream.split("/", 1)[0]
    for name, created in _jobs(ctx, group):
        if name == job and stream == stream_name(name, created):
            return name
    raise _missing_stream(stream)


def describe_log_streams(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    group = body.get("logGroupName") or ""
    prefix = body.get("logStreamNamePrefix") or ""
    limit = int(body.get("limit") or 50)
    streams = []
    for name, created in _jobs(ctx, group):
        stream = stream_name(name, created)
        if not stream.startswith(prefix):
            continue
        first, _ = _events(ctx, group, name, 0, 1)
        if not first:
            continue  # SageMaker makes the stream when the job first writes
        streams.append({
            "logStreamName": stream, "creationTime": int(created * 1000),
            "firstEventTimestamp": int(first[0].time * 1000),
            "lastEventTimestamp": int(first[0].time * 1000),
            "lastIngestionTime": int(first[0].time * 1000),
            "arn": f"arn:aws:logs:{ctx.region}:{ACCOUNT_ID}:log-group:{group}:log-stream:"
                   f"{stream}", "storedBytes": 0})
    if body.get("orderBy") == "LastEventTime":
        streams.sort(key=lambda s: s["lastEventTimestamp"])
    if body.get("descending"):
        streams.reverse()
    return {"logStreams": streams[:max(1, limit)]}


def _token(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(text.split("/", 1)[1])
    except (IndexError, ValueError):
        raise ApiError("InvalidParameterException", f"The specified nextToken is not valid: "
                       f"{text!r}.") from None


def get_log_events(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    group = body.get("logGroupName") or ""
    stream = body.get("logStreamName") or ""
    job = _stream_job(ctx, group, stream)
    limit = max(1, min(int(body.get("limit") or _MAX_EVENTS), _MAX_EVENTS))
    start_ms = body.get("startTime")
    end_ms = body.get("endTime")
    token = _token(body.get("nextToken"))
    from_head = bool(body.get("startFromHead")) or token is not None
    if from_head:
        seq = token or 0
        events: list[Any] = []
        next_seq = seq
        while len(events) < limit:
            batch, next_seq = _events(ctx, group, job, next_seq, limit)
            if not batch:
                break
            for e in batch:
                ms = int(e.time * 1000)
                if start_ms is not None and ms < int(start_ms):
                    continue
                if end_ms is not None and ms >= int(end_ms):
                    continue
                events.append(e)
            if len(batch) < limit:
                break
        events = events[:limit]
        if events:
            next_seq = events[-1].seq + 1
        first_seq = events[0].seq if events else seq
    else:  # the newest events, as CloudWatch answers without startFromHead
        everything: list[Any] = []
        nxt = 0
        while True:
            batch, nxt = _events(ctx, group, job, nxt, _MAX_EVENTS)
            if not batch:
                break
            everything.extend(batch)
        events = everything[-limit:]
        next_seq = nxt
        first_seq = events[0].seq if events else 0
    return {"events": [{"timestamp": int(e.time * 1000), "message": e.message,
                        "ingestionTime": int(e.time * 1000)} for e in events],
            "nextForwardToken": f"f/{next_seq:056d}",
            "nextBackwardToken": f"b/{first_seq:056d}"}


def filter_log_events(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    group = body.get("logGroupName") or ""
    if group.startswith("/aws/sagemaker/Endpoints/"):
        raise _missing_group(group)
    names = set(body.get("logStreamNames") or [])
    prefix = body.get("logStreamNamePrefix") or ""
    start_ms, end_ms = body.get("startTime"), body.get("endTime")
    terms = [t.strip('"') for t in (body.get("filterPattern") or "").split() if t.strip('"')]
    limit = max(1, min(int(body.get("limit") or _MAX_EVENTS), _MAX_EVENTS))
    try:
        offset = int(body.get("nextToken") or 0)
    except ValueError:
        raise ApiError("InvalidParameterException", "The specified nextToken is not valid.") \
            from None
    found = []
    for name, created in _jobs(ctx, group):
        stream = stream_name(name, created)
        if (names and stream not in names) or not stream.startswith(prefix):
            continue
        nxt = 0
        while True:
            batch, nxt = _events(ctx, group, name, nxt, _MAX_EVENTS)
            if not batch:
                break
            for e in batch:
                ms = int(e.time * 1000)
                if start_ms is not None and ms < int(start_ms):
                    continue
                if end_ms is not None and ms > int(end_ms):
                    continue
                if terms and not all(t in e.message for t in terms):
                    continue
                found.append({"logStreamName": stream, "timestamp": ms, "message": e.message,
                              "ingestionTime": ms, "eventId": f"{name}-{e.seq}"})
    found.sort(key=lambda e: e["timestamp"])
    chunk = found[offset:offset + limit]
    out: dict[str, Any] = {"events": chunk, "searchedLogStreams": []}
    if offset + limit < len(found):
        out["nextToken"] = str(offset + limit)
    return out


OPERATIONS = {
    "DescribeLogStreams": describe_log_streams,
    "GetLogEvents": get_log_events,
    "FilterLogEvents": filter_log_events,
}
