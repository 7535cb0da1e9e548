"""``python -m fmkit.sagemaker_api [--host 127.0.0.1] [--port 8787] [--allow-remote]``: the
server process that ``fmkit sagemaker-api`` starts."""

from __future__ import annotations

import argparse
import ipaddress
import sys


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address (the only default-safe binding)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmkit.sagemaker_api")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--allow-remote", action="store_true")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    if not is_loopback(args.host) and not args.allow_remote:
        print(f"error: --host {args.host} is not a loopback address and the API has no "
              "authentication; add --allow-remote to serve it anyway.", file=sys.stderr)
        return 2
    from fmkit.registry.home import fmkit_home
    from fmkit.sagemaker_api import serve

    if not is_loopback(args.host):
        print(f"warning: serving on {args.host}:{args.port} with NO authentication: any "
              "client that reaches it can train, deploy, and read or write every object.",
              file=sys.stderr)
    print(f"fmkit sagemaker-api on http://{args.host}:{args.port} (FMKIT_HOME {fmkit_home()})\n"
          f"  export AWS_ENDPOINT_URL=http://{args.host}:{args.port} AWS_ACCESS_KEY_ID=local "
          "AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1", file=sys.stderr,
          flush=True)
    try:
        serve(args.host, args.port, log_level=args.log_level)
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
