"""``python -m fmkit.console [--host 127.0.0.1] [--port 8788]``: the console's server process.

``fmkit console`` runs this in a child process (front ends do not import each other).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from fmkit.errors import FMError


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fmkit console",
                                     description="The fmkit web console over the registry.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=8788)
    parser.add_argument("--home", default=None, help="FMKIT_HOME to show")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from fmkit.console.app import run

    if not 0 < args.port < 65536:
        print(f"error: ConfigError: --port must be 1-65535; got {args.port}.", file=sys.stderr)
        raise SystemExit(2)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: the console listens on {args.host} and has no login: anyone who "
              "can reach this port can start jobs and endpoints.", file=sys.stderr)
    print(f"fmkit console on http://{args.host}:{args.port}/ (Ctrl-C stops it)",
          file=sys.stderr, flush=True)
    try:
        run(host=args.host, port=args.port, home=args.home, log_level=args.log_level)
    except FMError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
