"""``fmkit serve``, ``deploy``, ``endpoints list|delete``, ``recommend``, ``similar``,
``transform`` and ``export``: everything that uses a trained model.

Heavy imports (the server, scipy tables) happen inside the commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

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


def _recommender(model_dir: str, vocabulary: Optional[str]) -> Any:
    from fmkit.inference.recommend import Recommender
    from fmkit.serving.app import load_predictor

    return Recommender(load_predictor(model_dir, vocabulary=vocabulary).artifact)


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        model: Optional[str] = typer.Argument(None, help="The model (same as --model-dir).",
                                              show_default=False),
        model_dir: Optional[str] = typer.Option(None, "--model-dir", help=MODEL_HELP),
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on "
                                 "(0.0.0.0 for all)."),
        port: int = typer.Option(8080, "--port"),
        workers: int = typer.Option(1, "--workers", help="Worker processes, each with its "
                                    "own copy of the model."),
        max_payload_mb: float = typer.Option(6.0, "--max-payload-mb", help="Largest request "
                                             "body accepted (413 above)."),
        name: Optional[str] = typer.Option(None, "--name", help="Endpoint name answered on "
                                           "/endpoints/NAME/invocations (any valid name "
                                           "when unset)."),
        vocabulary: Optional[str] = typer.Option(None, "--vocabulary", help="vocabulary.json "
                                                 "for a model that has none (for /recommend)."),
        batch: bool = typer.Option(False, "--batch", help="Batch mode: JSON Lines when no "
                                   "Accept header is sent."),
        log_level: str = typer.Option("info", "--log-level"),
    ) -> None:
        """Serve a model with SageMaker's inference API (GET /ping, POST /invocations)."""
        from fmkit.serving.app import ServeConfig, run

        if (model is None) == (model_dir is None):
            raise ConfigError("give the model once: fmkit serve --model-dir DIR (or fmkit serve "
                              "DIR).")
        model_dir = model_dir or model
        if max_payload_mb <= 0:
            raise ConfigError(f"--max-payload-mb must be > 0; got {max_payload_mb:g}.")
        if name is not None:
            from fmkit.serving.endpoints import check_name

            check_name(name)
        config = ServeConfig(model_dir=model_dir,
                             max_payload_bytes=int(max_payload_mb * 1024 * 1024),
                             batch_mode=batch, endpoint_name=name, vocabulary=vocabulary)
        run(config, host=host, port=port, workers=workers, log_level=log_level)

    @app.command("deploy")
    def deploy(
        model_dir: str = typer.Option(..., "--model-dir", help=MODEL_HELP),
        name: str = typer.Option(..., "--name", help="Endpoint name (letters, digits, -)."),
        port: Optional[int] = typer.Option(None, "--port", help="Default: a free port."),
        host: str = typer.Option("127.0.0.1", "--host"),
        workers: int = typer.Option(1, "--workers"),
        vocabulary: Optional[str] = typer.Option(None, "--vocabulary"),
        wait: float = typer.Option(60.0, "--wait", help="Seconds to wait for /ping."),
    ) -> None:
        """Start a server in the background and record it as endpoint NAME."""
        from fmkit.serving import endpoints

        extra = {"--vocabulary": str(Path(vocabulary).resolve())} if vocabulary else None
        record = endpoints.deploy(model_dir, name, host=host, port=port, workers=workers,
                                  extra_args=extra, wait_s=wait)
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

        from fmkit.serving import endpoints

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
        from fmkit.serving import endpoints

        record = endpoints.delete(name, timeout_s=timeout)
        print(f"deleted endpoint {record.name} ({record.url})")

    @app.command("recommend")
    def recommend(
        model_dir: str = typer.Option(..., "--model-dir", help=MODEL_HELP),
        user: Optional[str] = typer.Option(None, "--user", help="Raw user id."),
        users: Optional[Path] = typer.Option(None, "--users", help="File of raw user ids "
                                             "(one per line): JSON Lines out, one per user."),
        k: int = typer.Option(10, "-k", "--k", help="Items per user."),
        exclude: Optional[Path] = typer.Option(None, "--exclude", help="File of raw item ids "
                                               "never to recommend."),
        exclude_seen: bool = typer.Option(True, "--exclude-seen/--include-seen",
                                          help="Leave out items rated in training."),
        min_score: Optional[float] = typer.Option(None, "--min-score"),
        label_only: bool = typer.Option(False, "--label-only", help="Binary models: only "
                                        "items with predicted_label 1."),
        context: list[str] = typer.Option([], "--context", help="field=value, repeatable."),
        vocabulary: Optional[str] = typer.Option(None, "--vocabulary", help="vocabulary.json "
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
        vocabulary: Optional[str] = typer.Option(None, "--vocabulary"),
    ) -> None:
        """Print the k items most similar to ITEM by factor cosine similarity (JSON)."""
        rec = _recommender(model_dir, vocabulary)
        result = rec.similar(item, k=k)
        print(json.dumps({"item": result.query, "similar": [
            {"item": i, "score": s} for i, s in zip(result.items, result.scores)]}, indent=2))

    @app.command("transform")
    def transform(
        model_dir: str = typer.Option(..., "--model-dir", help=MODEL_HELP),
        input: str = typer.Option(..., "--input", help="File, folder or s3:// prefix."),
        output: str = typer.Option(..., "--output", help="Folder or s3:// prefix for the "
                                   ".out files."),
        content_type: str = typer.Option("application/x-recordio-protobuf", "--content-type"),
        accept: str = typer.Option("application/jsonlines", "--accept"),
        split_type: Optional[str] = typer.Option(None, "--split-type", help="Line|RecordIO|"
                                                 "None (default from --content-type)."),
        batch_strategy: str = typer.Option("MultiRecord", "--batch-strategy",
                                           help="MultiRecord|SingleRecord."),
        max_payload_mb: float = typer.Option(6.0, "--max-payload-mb"),
        assemble_with: str = typer.Option("Line", "--assemble-with", help="Line|None."),
    ) -> None:
        """Batch transform: one <name>.out per input file, records in input order."""
        from fmkit.inference.transform import transform as run_transform
        from fmkit.serving.app import load_predictor

        if max_payload_mb <= 0:
            raise ConfigError(f"--max-payload-mb must be > 0; got {max_payload_mb:g}.")
        summary = run_transform(
            load_predictor(model_dir), input, output, content_type=content_type,
            accept=accept, split_type=split_type, batch_strategy=batch_strategy,
            max_payload_bytes=int(max_payload_mb * 1024 * 1024), assemble_with=assemble_with,
        )
        print(json.dumps({"outputs": summary.outputs, "records": summary.records,
                          "requests": summary.requests}, indent=2))

    @app.command("export")
    def export(
        model_dir: str = typer.Option(..., "--model-dir", help=MODEL_HELP),
        format: str = typer.Option(..., "--format", help="sagemaker (model.tar.gz) or npz "
                                   "(w0, w, V, vocabulary, embeddings)."),
        output: str = typer.Option(..., "--output", "-o", help="File, or folder for "
                                   "model.tar.gz / model.npz."),
    ) -> None:
        """Export a model as SageMaker's model.tar.gz or as plain numpy arrays."""
        from fmkit.artifact import load
        from fmkit.inference.export import export as run_export

        path = run_export(load(model_dir), output, format=format)
        print(str(path))
