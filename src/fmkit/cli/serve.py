"""``fmkit serve``, ``deploy``, ``endpoints list|delete``, ``recommend``, ``similar``,
``transform`` and ``export``: everything that uses a trained model.

Heavy imports (the server, scipy tables) happen inside the commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from fmkit.errors import ConfigError, DataError

MODEL_HELP = "fmkit model folder, SageMaker model.tar.gz / model_algo-1, or a folder holding one."


def _read_ids(path: Path) -> list[str]:
    """Read raw ids, one per line (blank lines and '#' comments skipped), or a JSON list."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}.") from None
    if text.lstrip().startswith("["):
        try:
            ids = json.loads(text)
        except ValueError as exc:
            raise DataError(f"{path}: not a JSON list: {exc}.") from None
        return [str(i) for i in ids]
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _parse_context(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name:
            raise ConfigError(f"--context takes field=value; got {pair!r}.")
        out[name] = value
    return out


def _recommender(model_dir: str, vocabulary: str | None) -> Any:
    from fmkit.inference.recommend import load_recommender

    return load_recommender(model_dir, vocabulary=vocabulary)


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        model: str | None = typer.Argument(None, help="The model (same as --model-dir).",
                                              show_default=False),
        model_dir: str | None = typer.Option(None, "--model-dir", help=MODEL_HELP),
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on "
                                 "(0.0.0.0 for all)."),
        port: int = typer.Option(8080, "--port"),
        workers: int = typer.Option(1, "--workers", help="Worker processes, each with its "
                                    "own copy of the model."),
        max_payload_mb: float = typer.Option(6.0, "--max-payload-mb", help="Largest request "
                                             "body accepted (413 above)."),
        name: str | None = typer.Option(None, "--name", help="Endpoint name answered on "
                                           "/endpoints/NAME/invocations (any valid name "
                                           "when unset)."),
        vocabulary: str | None = typer.Option(None, "--vocabulary", help="vocabulary.json "
                                                 "for a model that has none (for /recommend)."),
        batch: bool = typer.Option(False, "--batch", help="Batch mode: JSON Lines when no "
                                   "Accept header is sent."),
        log_level: str = typer.Option("info", "--log-level"),
        max_users: int | None = typer.Option(
            None, "--max-users-per-request", help="/recommend: most users in one request "
            "(413 beyond; default 1000)."),
        max_k: int | None = typer.Option(None, "--max-k", help="/recommend: most items per "
                                            "user (400 beyond; default: the number of items)."),
    ) -> None:
        """Serve a model with SageMaker's inference API (GET /ping, POST /invocations)."""
        if (model is None) == (model_dir is None):
            raise ConfigError("give the model once: fmkit serve --model-dir DIR (or fmkit serve "
                              "DIR).")
        model_dir = model_dir or model
        if max_payload_mb <= 0:
            raise ConfigError(f"--max-payload-mb must be > 0; got {max_payload_mb:g}.")
        if workers < 1:
            raise ConfigError(f"--workers must be an int >= 1; got {workers}.")
        if name is not None:
            from fmkit.registry.records import check_name

            check_name(name, what="endpoint")
        from fmkit.jobs.endpoints import check_model, serve_command

        check_model(model_dir, vocabulary=vocabulary)  # a bad model fails here, in one line
        cmd = serve_command(model_dir, host=host, port=port, workers=workers,
                            max_payload_mb=max_payload_mb, name=name, vocabulary=vocabulary,
                            batch=batch, log_level=log_level, max_users=max_users,
                            max_k=max_k)
        from fmkit.cli.child import run_server

        raise typer.Exit(run_server(cmd))

    @app.command("deploy")
    def deploy(
        model_dir: str = typer.Option(..., "--model-dir", help=MODEL_HELP),
        name: str = typer.Option(..., "--name", help="Endpoint name (letters, digits, -)."),
        port: int | None = typer.Option(None, "--port", help="Default: a free port."),
        host: str = typer.Option("127.0.0.1", "--host"),
        workers: int = typer.Option(1, "--workers"),
        vocabulary: str | None = typer.Option(None, "--vocabulary"),
        wait: float = typer.Option(60.0, "--wait", help="Seconds to wait for /ping."),
        max_users: int | None = typer.Option(
            None, "--max-users-per-request", help="/recommend: most users in one request "
            "(default 1000)."),
        max_k: int | None = typer.Option(None, "--max-k", help="/recommend: most items per "
                                            "user (default: the number of items)."),
    ) -> None:
        """Start a server in the background and record it as endpoint NAME."""
        from fmkit.jobs import endpoints

        record = endpoints.deploy(model_dir, name, host=host, port=port, workers=workers,
                                  vocabulary=str(Path(vocabulary).resolve()) if vocabulary
                                  else None, max_users=max_users, max_k=max_k, wait_s=wait)
        print(json.dumps({"name": record.name, "url": record.url, "model": record.model,
                          "status": record.status, "pid": record.pid}, indent=2))

    endpoints_app = typer.Typer(help="Local endpoints started with fmkit deploy.",
                                no_args_is_help=True)
    app.add_typer(endpoints_app, name="endpoints")

    @endpoints_app.command("list")
    def endpoints_list(
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """List endpoints: name, url, model, status (checked now), started."""
        import time

        from fmkit.jobs import endpoints

        records = endpoints.list_endpoints()
        rows = [{"name": r.name, "url": r.url, "model": r.model, "status": r.status,
                 "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.creation_time))}
                for r in records]
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        cols = ("name", "url", "model", "status", "started")
        widths = {c: max([len(c)] + [len(str(r[c])) for r in rows]) for c in cols}
        print("  ".join(c.upper().ljust(widths[c]) for c in cols).rstrip())
        for r in rows:
            print("  ".join(str(r[c]).ljust(widths[c]) for c in cols).rstrip())

    @endpoints_app.command("delete")
    def endpoints_delete(
        name: str = typer.Argument(..., help="Endpoint to stop."),
        timeout: float = typer.Option(35.0, "--timeout", help="Seconds to let in-flight "
                                      "requests finish before killing."),
    ) -> None:
        """Stop endpoint NAME (in-flight requests finish) and forget it."""
        from fmkit.jobs import endpoints

        record = endpoints.delete(name, timeout_s=timeout)
        print(f"deleted endpoint {record.name} ({record.url})")

    @app.command("recommend")
    def recommend(
        model_dir: str = typer.Option(..., "--model-dir", help=MODEL_HELP),
        user: str | None = typer.Option(None, "--user", help="Raw user id."),
        users: Path | None = typer.Option(None, "--users", help="File of raw user ids "
                                             "(one per line): JSON Lines out, one per user."),
        k: int = typer.Option(10, "-k", "--k", help="Items per user."),
        exclude: Path | None = typer.Option(None, "--exclude", help="File of raw item ids "
                                               "never to recommend."),
        exclude_seen: bool = typer.Option(True, "--exclude-seen/--include-seen",
                                          help="Leave out items rated in training."),
        min_score: float | None = typer.Option(None, "--min-score"),
        label_only: bool = typer.Option(False, "--label-only", help="Binary models: only "
                                        "items with predicted_label 1."),
        context: list[str] = typer.Option([], "--context", help="field=value, repeatable."),
        vocabulary: str | None = typer.Option(None, "--vocabulary", help="vocabulary.json "
                                                 "for a model that has none."),
    ) -> None:
        """Print the top-k items for a user (JSON), best first, excluding rated items."""
        if (user is None) == (users is None):
            raise ConfigError("give exactly one of --user ID or --users FILE.")
        if k < 0:
            raise ConfigError(f"-k must be >= 0; got {k}.")
        rec = _recommender(model_dir, vocabulary)
        options = dict(k=k, exclude_seen=exclude_seen,
                       exclude=_read_ids(exclude) if exclude else None,
                       context=_parse_context(context) or None, min_score=min_score,
                       label_only=label_only)
        if user is not None:
            print(json.dumps(rec.recommend(user, **options).to_dict(), indent=2))
            return
        assert users is not None
        out = sys.stdout
        for result in rec.recommend_many(_read_ids(users), **options):
            out.write(json.dumps(result.to_dict()) + "\n")

    @app.command("similar")
    def similar(
        model_dir: str = typer.Option(..., "--model-dir", help=MODEL_HELP),
        item: str = typer.Option(..., "--item", help="Raw item id."),
        k: int = typer.Option(10, "-k", "--k"),
        vocabulary: str | None = typer.Option(None, "--vocabulary"),
    ) -> None:
        """Print the k items most similar to ITEM by factor cosine similarity (JSON)."""
        rec = _recommender(model_dir, vocabulary)
        result = rec.similar(item, k=k)
        print(json.dumps({"item": result.query,  # as /similar: title when known
                          "similar": result.to_dict(key="item")["recommendations"]}, indent=2))

    @app.command("transform")
    def transform(
        model_dir: str = typer.Option(..., "--model-dir", help=MODEL_HELP),
        input: str = typer.Option(..., "--input", help="File, folder or s3:// prefix."),
        output: str = typer.Option(..., "--output", help="Folder or s3:// prefix for the "
                                   ".out files."),
        content_type: str = typer.Option("application/x-recordio-protobuf", "--content-type"),
        accept: str = typer.Option("application/jsonlines", "--accept"),
        split_type: str | None = typer.Option(None, "--split-type", help="Line|RecordIO|"
                                                 "None (default from --content-type)."),
        batch_strategy: str = typer.Option("MultiRecord", "--batch-strategy",
                                           help="MultiRecord|SingleRecord."),
        max_payload_mb: float = typer.Option(6.0, "--max-payload-mb"),
        assemble_with: str = typer.Option("Line", "--assemble-with", help="Line|None."),
    ) -> None:
        """Batch transform: one <name>.out per input file, records in input order."""
        from fmkit.jobs import transform as service

        if max_payload_mb <= 0:
            raise ConfigError(f"--max-payload-mb must be > 0; got {max_payload_mb:g}.")
        job = service.run(service.TransformRequest(
            model_dir=model_dir, input=input, output=output, content_type=content_type,
            accept=accept, split_type=split_type, batch_strategy=batch_strategy,
            max_payload_bytes=int(max_payload_mb * 1024 * 1024), assemble_with=assemble_with,
            source="cli"))
        print(json.dumps(job.summary, indent=2))

    @app.command("export")
    def export(
        model_dir: str = typer.Option(..., "--model-dir", help=MODEL_HELP),
        format: str = typer.Option(..., "--format", help="sagemaker (model.tar.gz) or npz "
                                   "(w0, w, V, vocabulary, embeddings)."),
        output: str = typer.Option(..., "--output", "-o", help="File, or folder for "
                                   "model.tar.gz / model.npz."),
    ) -> None:
        """Export a model as SageMaker's model.tar.gz or as plain numpy arrays."""
        from fmkit.jobs.models import export as run_export

        print(str(run_export(model_dir, output, format=format)))
