"""What every console handler receives: the request, its form, the registry and the token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fmkit.registry import Registry


@dataclass
class Ctx:
    """One request as the page functions see it."""

    registry: Registry
    csrf: str
    path_params: dict[str, str]
    query: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)
    method: str = "GET"
    settings: dict[str, Any] = field(default_factory=dict)

    def arg(self, name: str, default: str = "") -> str:
        return self.query.get(name, default)

    def param(self, name: str) -> str:
        return self.path_params[name]


@dataclass
class Reply:
    """A page's answer: HTML (default), JSON, a redirect or a file."""

    body: Any = ""
    status: int = 200
    kind: str = "html"  # html | json | redirect | file
    headers: dict[str, str] = field(default_factory=dict)


def html(body: str, status: int = 200) -> Reply:
    return Reply(body, status, "html")


def json_reply(data: Any, status: int = 200) -> Reply:
    return Reply(data, status, "json")


def redirect(url: str) -> Reply:
    return Reply(url, 303, "redirect")


def file_reply(path: Any, filename: str | None = None) -> Reply:
    return Reply(path, 200, "file", {"filename": filename or ""})
