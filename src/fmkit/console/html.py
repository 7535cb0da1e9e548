"""Small HTML builders for the console's server-rendered pages.

Every value that comes from a record, a file or a request goes through :func:`e` (HTML
escaping); the builders return ``str`` fragments that are already safe to concatenate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from fmkit.registry.records import format_number, format_time

NAV = (("/", "Overview"), ("/jobs", "Training jobs"), ("/tuning", "Tuning jobs"),
       ("/models", "Models"), ("/endpoints", "Endpoints"), ("/train", "Start training"))

RUNNING = ("InProgress", "Stopping", "Creating", "Updating", "Starting")


def e(value: Any) -> str:
    """Escape ``value`` for HTML text or a quoted attribute; ``None`` becomes ``-``."""
    return "-" if value is None else escape(str(value), quote=True)


def u(value: Any) -> str:
    """Quote ``value`` as one URL path segment."""
    return quote(str(value), safe="")


def query(**params: Any) -> str:
    """Return ``?a=1&b=2`` for the params that are not None/empty (or '' if none)."""
    kept = {k: v for k, v in params.items() if v not in (None, "", False)}
    return "?" + urlencode(kept) if kept else ""


def num(value: Any) -> str:
    """Format a metric or hyperparameter value compactly (6 significant digits); booleans
    as JSON writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return format_number(value)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def when(t: float | None) -> str:
    """Unix seconds as ``YYYY-MM-DD HH:MM:SS`` (UTC); ``-`` for none (or 0, never set)."""
    return format_time(t) if t else "-"


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def status(value: str | None) -> str:
    """A coloured status badge."""
    text = value or "-"
    kind = text.split(" ")[0].lower()
    return f'<span class="status s-{e(kind)}">{e(text)}</span>'


def link(href: str, text: Any) -> str:
    return f'<a href="{e(href)}">{e(text)}</a>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, cls: str = "",
          sortable: bool = False, tbody_id: str | None = None, empty: str = "none") -> str:
    """A table of pre-rendered cells (``headers`` are escaped here, cells are not).

    With ``sortable`` each header sorts the rows on click (console.js); a cell may carry
    ``data-sort`` on its ``<td>`` via :func:`cell`.
    """
    head = "".join(f'<th{" data-sortable" if sortable else ""}>{e(h)}</th>' for h in headers)
    tid = f' id="{e(tbody_id)}"' if tbody_id else ""
    return (f'<table class="grid {e(cls)}"><thead><tr>{head}</tr></thead>'
            f"<tbody{tid}>{table_rows(headers, rows, empty=empty)}</tbody></table>")


def table_rows(headers: Sequence[str], rows: Iterable[Sequence[str]], *,
               empty: str = "none") -> str:
    """The ``<tr>`` rows of :func:`table` alone (one row saying ``empty`` when there are
    none): what a polled page's ``<tbody>`` is replaced with."""
    body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in r)
                   + "</tr>" for r in rows)
    return body or f'<tr class="empty"><td colspan="{len(headers)}">{e(empty)}</td></tr>'


def cell(html: str, sort_value: Any = None, cls: str = "") -> str:
    """A ``<td>`` with a sort key for sortable tables."""
    attrs = ""
    if sort_value is not None:
        attrs += f' data-sort="{e(sort_value)}"'
    if cls:
        attrs += f' class="{e(cls)}"'
    return f"<td{attrs}>{html}</td>"


def kv(pairs: Iterable[tuple[str, str]], *, cls: str = "kv") -> str:
    """A two-column definition table (values pre-rendered)."""
    rows = "".join(f"<tr><th>{e(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<table class="{e(cls)}">{rows or "<tr><td>none</td></tr>"}</table>'


def mapping(values: Mapping[str, Any]) -> str:
    """A key/value table of a plain mapping (keys sorted, values escaped)."""
    return kv((str(k), e(num(v))) for k, v in sorted(values.items()) if v is not None)


def section(title: str, body: str, *, sid: str | None = None) -> str:
    ident = f' id="{e(sid)}"' if sid else ""
    return f"<section><h2>{e(title)}</h2><div{ident}>{body}</div></section>"


def csrf_field(token: str) -> str:
    return f'<input type="hidden" name="csrf_token" value="{e(token)}">'


def post_button(action: str, label: str, token: str, *, cls: str = "",
                fields: Mapping[str, str] | None = None, confirm: str | None = None) -> str:
    """A one-button form that POSTs to ``action`` with the CSRF token."""
    hidden = "".join(f'<input type="hidden" name="{e(k)}" value="{e(v)}">'
                     for k, v in (fields or {}).items())
    data = f' data-confirm="{e(confirm)}"' if confirm else ""
    return (f'<form method="post" action="{e(action)}" class="inline"{data}>'
            f"{csrf_field(token)}{hidden}"
            f'<button type="submit" class="{e(cls)}">{e(label)}</button></form>')


def field(name: str, label: str, control: str, errors: Mapping[str, str], *,
          hint: str = "") -> str:
    """A labelled form row with its error (if any) shown beside the control."""
    err = errors.get(name)
    err_html = (f'<div class="field-error" id="error-{e(name)}" role="alert">{e(err)}</div>'
                if err else "")
    hint_html = f'<div class="hint">{e(hint)}</div>' if hint else ""
    cls = "field has-error" if err else "field"
    return (f'<div class="{cls}"><label for="f-{e(name)}">{e(label)}</label>'
            f"<div>{control}{err_html}{hint_html}</div></div>")


def text_input(name: str, value: Any = "", *, placeholder: str = "", type: str = "text",
               attrs: str = "") -> str:
    return (f'<input type="{e(type)}" id="f-{e(name)}" name="{e(name)}" value="{e(value or "")}"'
            f' placeholder="{e(placeholder)}" {attrs}>')


def select(name: str, options: Sequence[tuple[str, str]], selected: Any = None) -> str:
    opts = "".join(f'<option value="{e(v)}"{" selected" if str(selected) == v else ""}>'
                   f"{e(label)}</option>" for v, label in options)
    return f'<select id="f-{e(name)}" name="{e(name)}">{opts}</select>'


def page(title: str, body: str, *, active: str = "", csrf: str = "", poll: str | None = None,
         log: str | None = None) -> str:
    """The full HTML document: nav bar, a title and ``body``.

    ``poll`` is a JSON URL console.js polls while the page shows something running (its
    ``sections`` replace elements by id); ``log`` is a log-events URL it follows.
    """
    nav = "".join(f'<a href="{href}"{" class=active" if href == active else ""}>{e(text)}</a>'
                  for href, text in NAV)
    attrs = ""
    if poll:
        attrs += f' data-poll="{e(poll)}"'
    if log:
        attrs += f' data-log="{e(log)}"'
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="csrf-token" content="{e(csrf)}">'
        f"<title>{e(title)} - fmkit console</title>"
        '<link rel="stylesheet" href="/static/console.css">'
        '<link rel="icon" href="data:,">'
        '<script src="/static/console.js" defer></script></head>'
        f'<body><header><a class="brand" href="/">fmkit console</a><nav>{nav}</nav></header>'
        f'<main{attrs}><h1>{e(title)}</h1>{body}</main></body></html>'
    )


def message_page(title: str, text: str, *, csrf: str = "") -> str:
    return page(title, f'<p class="message">{e(text)}</p>', csrf=csrf)
