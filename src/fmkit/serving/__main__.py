"""``python -m fmkit.serving``: run the model server (what ``fmkit serve`` hands over to).

The same options as ``fmkit serve``; errors in them or in the model print one line and
exit 2 before the port opens.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from fmkit.errors import FMError


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fmkit.serving",
                                description="Serve an FM with SageMaker's inference API.")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--max-payload-mb", type=float, default=6.0)
    p.add_argument("--name", default=None)
    p.add_argument("--vocabulary", default=None)
    p.add_argument("--batch", action="store_true")
    p.add_argument("--log-level", default="info")
    p.add_argument("--max-users-per-request", type=int, default=None)
    p.add_argument("--max-k", type=int, default=None)
    return p.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> None:
    from fmkit.serving.app import config_from_args, run

    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        config = config_from_args(args)
        run(config, host=args.host, port=args.port, workers=args.workers,
            log_level=args.log_level)
    except FMError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
