"""Downloads from the registry's own folder (FMKIT_HOME): exports, job files, logs.

A path is resolved (links included) and must stay inside FMKIT_HOME; anything else, a
``../`` included, is a 404.
"""

from __future__ import annotations

from fmkit.console import security
from fmkit.console.context import Ctx, Reply, file_reply


def download(ctx: Ctx) -> Reply:
    rel = ctx.param("path")
    target = security.inside(ctx.registry.home, rel)
    if target.name == "registry.db" or target.suffix in (".db-wal", ".db-shm"):
        raise security.PathError(f"no such file: {rel!r}.")
    return file_reply(target, target.name)
