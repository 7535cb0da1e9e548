"""Endpoints: the list (status, URL, requests served, start/stop) and one endpoint's page
with an invocation form, "recommend for a user" and "similar items"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fmkit.console import client, services
from fmkit.console.context import Ctx, Reply, html, json_reply, redirect
from fmkit.console.html import (
    cell,
    csrf_field,
    e,
    field,
    kv,
    link,
    num,
    page,
    post_button,
    section,
    select,
    status,
    table,
    table_rows,
    text_input,
    u,
    when,
)
from fmkit.errors import FMError

RUNNING = ("Creating", "Updating")  # the page polls while an endpoint is in one of these
CONTENT_TYPES = (("application/json", "application/json"), ("text/csv", "text/csv"),
                 ("application/jsonlines", "application/jsonlines"))


def _served(ep: Any) -> tuple[str, Any]:
    if ep.status != "InService":
        return "-", None
    doc = client.stats(ep.url)
    if doc is None:
        return "-", None
    n = doc.get("requests_served")
    pid = doc.get("pid")
    return (f"{n} (worker {pid})" if pid else str(n)), n


def _buttons(ctx: Ctx, ep: Any) -> str:
    base = f"/endpoints/{u(ep.name)}"
    if ep.status == "InService" or ep.status in RUNNING:
        first = post_button(f"{base}/stop", "Stop", ctx.csrf, cls="stop",
                            confirm=f"Stop endpoint {ep.name}? (it can be started again)")
    else:
        first = post_button(f"{base}/start", "Start", ctx.csrf, cls="start")
    return first + post_button(f"{base}/delete", "Delete", ctx.csrf, cls="danger",
                               confirm=f"Stop and delete endpoint {ep.name}?")


def _model_link(ctx: Ctx, ep: Any) -> str:
    name = ep.model_name
    if name:
        return link(f"/models/{u(name)}", name) + f' <span class="muted">{e(ep.model)}</span>'
    for m in ctx.registry.models.list():
        if m.artifact == ep.model:
            return (link(f"/models/{u(m.name)}", m.name)
                    + f' <span class="muted">{e(ep.model)}</span>')
    return e(ep.model)


def rows(ctx: Ctx, found: list[Any]) -> list[list[str]]:
    out = []
    for ep in found:
        served, n = _served(ep)
        out.append([cell(link(f"/endpoints/{u(ep.name)}", ep.name), ep.name),
                    cell(status(ep.status), ep.status), cell(e(ep.url)),
                    cell(_model_link(ctx, ep)), cell(e(served), n if n is not None else ""),
                    cell(e(when(ep.creation_time)), ep.creation_time),
                    cell(_buttons(ctx, ep))])
    return out


HEADERS = ["name", "status", "url", "model", "requests served", "created (UTC)", ""]


def list_page(ctx: Ctx) -> Reply:
    found = services.list_endpoints(ctx.registry)
    body = table(HEADERS, rows(ctx, found), sortable=True, tbody_id="endpoints-body",
                 empty="no endpoints; deploy one from a model's page")
    running = any(ep.status in RUNNING for ep in found)
    return html(page("Endpoints", body, active="/endpoints", csrf=ctx.csrf,
                     poll="/api/endpoints" if running else None))


def list_api(ctx: Ctx) -> Reply:
    found = services.list_endpoints(ctx.registry)
    inner = table_rows(HEADERS, rows(ctx, found), empty="no endpoints")
    return json_reply({"sections": {"endpoints-body": inner},
                       "done": not any(ep.status in RUNNING for ep in found)})


def _summary(ctx: Ctx, ep: Any) -> str:
    served, _ = _served(ep)
    log = (ep.config or {}).get("log")
    pairs = [
        ("Status", status(ep.status) + (f' <span class="reason">{e(ep.failure_reason)}</span>'
                                        if ep.failure_reason else "")),
        ("URL", e(ep.url)), ("Model", _model_link(ctx, ep)),
        ("Requests served", e(served)),
        ("Workers", e((ep.config or {}).get("workers"))), ("Process", e(ep.pid)),
        ("Created", e(when(ep.creation_time)) + " UTC"),
    ]
    if log:
        try:
            rel = Path(log).resolve().relative_to(ctx.registry.home.resolve())
            pairs.append(("Log", link("/files/" + "/".join(u(p) for p in rel.parts), rel.name)))
        except ValueError:
            pairs.append(("Log", e(log)))
    return kv(pairs) + '<div class="actions">' + _buttons(ctx, ep) + "</div>"


def _example_body(ep: Any) -> str:
    meta = services.model_metadata(ep.model)
    dim = int(meta.get("feature_dim") or 1)
    keys = [0] + ([dim - 1] if dim > 1 else [])
    doc = {"instances": [{"data": {"features": {"keys": keys, "shape": [dim],
                                                "values": [1.0] * len(keys)}}}]}
    return json.dumps(doc)


def _forms(ctx: Ctx, ep: Any, errors: dict[str, str], values: dict[str, str]) -> str:
    base = f"/endpoints/{e(u(ep.name))}"
    invoke = (f'<form method="post" action="{base}/invoke" class="form" id="invoke-form">'
              + csrf_field(ctx.csrf)
              + field("content_type", "Content type",
                      select("content_type", CONTENT_TYPES,
                             values.get("content_type", "application/json")), errors)
              + field("body", "Body", f'<textarea id="f-body" name="body" rows="5">'
                      f'{e(values.get("body") or _example_body(ep))}</textarea>', errors)
              + '<button type="submit">Invoke</button></form>')
    recommend = (f'<form method="post" action="{base}/recommend" class="form" id="recommend-form">'
                 + csrf_field(ctx.csrf)
                 + field("user", "User id", text_input("user", values.get("user", "1")), errors)
                 + field("k", "Top k", text_input("k", values.get("k", "10"), type="number",
                                                  attrs='min="1" max="1000"'), errors)
                 + field("exclude_seen", "Exclude rated",
                         '<input type="checkbox" id="f-exclude_seen" name="exclude_seen" value="1"'
                         + (" checked" if values.get("exclude_seen", "1") else "") + ">", errors)
                 + '<button type="submit">Recommend</button></form>')
    similar = (f'<form method="post" action="{base}/similar" class="form" id="similar-form">'
               + csrf_field(ctx.csrf)
               + field("item", "Item id", text_input("item", values.get("item", "50")), errors)
               + field("k_similar", "Top k", text_input("k_similar", values.get("k_similar", "10"),
                                                        type="number", attrs='min="1" max="1000"'),
                       errors)
               + '<button type="submit">Similar items</button></form>')
    return ('<div class="three">' + section("Invoke", invoke)
            + section("Recommend for a user", recommend)
            + section("Similar items", similar) + "</div>")


def _page(ctx: Ctx, name: str, *, errors: dict[str, str] | None = None,
          values: dict[str, str] | None = None, result: str = "", code: int = 200) -> Reply:
    ep = services.describe_endpoint(ctx.registry, name)
    body = (section("Endpoint", _summary(ctx, ep), sid="endpoint-summary")
            + _forms(ctx, ep, errors or {}, values or {})
            + (section("Answer", result, sid="answer") if result else ""))
    return html(page(f"Endpoint {ep.name}", body, active="/endpoints", csrf=ctx.csrf,
                     poll=f"/api/endpoints/{u(ep.name)}" if ep.status in RUNNING else None),
                code)


def endpoint_page(ctx: Ctx) -> Reply:
    return _page(ctx, ctx.param("name"))


def endpoint_api(ctx: Ctx) -> Reply:
    ep = services.describe_endpoint(ctx.registry, ctx.param("name"))
    return json_reply({"name": ep.name, "status": ep.status, "url": ep.url,
                       "done": ep.status not in RUNNING,
                       "sections": {"endpoint-summary": _summary(ctx, ep)}})


def stop(ctx: Ctx) -> Reply:
    name = ctx.param("name")
    services.stop_endpoint(ctx.registry, name)
    return redirect(f"/endpoints/{u(name)}")


def delete(ctx: Ctx) -> Reply:
    services.delete_endpoint(ctx.registry, ctx.param("name"))
    return redirect("/endpoints")


def start(ctx: Ctx) -> Reply:
    name = ctx.param("name")
    services.redeploy(ctx.registry, name)
    return redirect(f"/endpoints/{u(name)}")


def _record(ctx: Ctx) -> Any:
    ep = services.describe_endpoint(ctx.registry, ctx.param("name"))
    if not ep.url:
        raise FMError(f"endpoint {ep.name} has no URL yet.")
    return ep


def _answer_block(answer: client.Answer) -> str:
    doc = answer.json()
    text = json.dumps(doc, indent=2) if doc is not None else answer.text
    return (f'<p>HTTP {e(answer.status)} <span class="muted">{e(answer.content_type)}</span></p>'
            f'<pre class="answer" id="answer-body">{e(text[:200000])}</pre>')


def invoke(ctx: Ctx) -> Reply:
    ep = _record(ctx)
    values = {"content_type": ctx.form.get("content_type", "application/json"),
              "body": ctx.form.get("body", "")}
    errors: dict[str, str] = {}
    if values["content_type"] not in dict(CONTENT_TYPES):
        errors["content_type"] = "choose one of the listed content types."
    if not values["body"].strip():
        errors["body"] = "the body is empty."
    if errors:
        return _page(ctx, ep.name, errors=errors, values=values, code=400)
    try:
        answer = client.call(f"{ep.url}/invocations", body=values["body"].encode(),
                             content_type=values["content_type"], accept="application/json")
    except client.EndpointCallError as exc:
        return _page(ctx, ep.name, errors={"body": str(exc)}, values=values, code=502)
    return _page(ctx, ep.name, values=values, result=_answer_block(answer))


def _k(ctx: Ctx, name: str, errors: dict[str, str]) -> int:
    raw = ctx.form.get(name, "10").strip()
    try:
        k = int(raw)
        if not 1 <= k <= 1000:
            raise ValueError
        return k
    except ValueError:
        errors[name] = f"k must be an integer from 1 to 1000; got {raw!r}."
        return 10


def _items_table(items: list[dict[str, Any]], *, tid: str) -> str:
    rows = [[cell(e(r), r), cell(e(it.get("item"))), cell(e(it.get("title") or "")),
             cell(e(num(it.get("score"))), it.get("score"))]
            for r, it in enumerate(items, 1)]
    return table(["rank", "item", "title", "score"], rows, sortable=True, tbody_id=tid,
                 empty="no items")


def _ask(ctx: Ctx, ep: Any, path: str, payload: dict[str, Any], *, field: str,
         values: dict[str, str]) -> dict[str, Any] | Reply:
    """POST ``payload`` to the endpoint's ``path``; return its JSON object, or the page
    again with the error under the form's ``field`` (502 unreachable, 400 refused)."""
    try:
        answer = client.post_json(f"{ep.url}{path}", payload)
    except client.EndpointCallError as exc:
        return _page(ctx, ep.name, errors={field: str(exc)}, values=values, code=502)
    doc = answer.json()
    if answer.status != 200 or not isinstance(doc, dict):
        message = doc.get("message") if isinstance(doc, dict) else answer.text
        return _page(ctx, ep.name, errors={field: str(message)}, values=values, code=400)
    return doc


def recommend(ctx: Ctx) -> Reply:
    ep = _record(ctx)
    values = {"user": ctx.form.get("user", "").strip(), "k": ctx.form.get("k", "10"),
              "exclude_seen": ctx.form.get("exclude_seen", "")}
    errors: dict[str, str] = {}
    k = _k(ctx, "k", errors)
    if not values["user"]:
        errors["user"] = "give a raw user id (as in the training data, e.g. 1)."
    if errors:
        return _page(ctx, ep.name, errors=errors, values=values, code=400)
    doc = _ask(ctx, ep, "/recommend", {"user": values["user"], "k": k,
                                       "exclude_seen": bool(values["exclude_seen"])},
               field="user", values=values)
    if isinstance(doc, Reply):
        return doc
    cold = doc.get("cold_start")
    head = (f'<p>Top {e(k)} for user <b>{e(doc.get("user"))}</b>'
            + (f' <span class="muted">(cold start: {e(cold)})</span>' if cold else "") + "</p>")
    return _page(ctx, ep.name, values=values,
                 result=head + _items_table(doc.get("recommendations") or [],
                                            tid="recommendations"))


def similar(ctx: Ctx) -> Reply:
    ep = _record(ctx)
    values = {"item": ctx.form.get("item", "").strip(),
              "k_similar": ctx.form.get("k_similar", "10")}
    errors: dict[str, str] = {}
    k = _k(ctx, "k_similar", errors)
    if not values["item"]:
        errors["item"] = "give a raw item id (e.g. 50)."
    if errors:
        return _page(ctx, ep.name, errors=errors, values=values, code=400)
    doc = _ask(ctx, ep, "/similar", {"item": values["item"], "k": k}, field="item",
               values=values)
    if isinstance(doc, Reply):
        return doc
    head = f'<p>Items most similar to <b>{e(doc.get("item"))}</b></p>'
    return _page(ctx, ep.name, values=values,
                 result=head + _items_table(doc.get("similar") or [], tid="similar"))
