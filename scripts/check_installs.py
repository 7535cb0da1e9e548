"""Helpers of scripts/check_installs.sh, run by the interpreter of the install under check.

Only the standard library is imported at the top, so the same file runs in every virtualenv:

    python scripts/check_installs.py free-port
    python scripts/check_installs.py http URL [--recommend USER]   # /ping, /invocations, ...
    python scripts/check_installs.py endpoint-url NAME FMKIT       # from `fmkit endpoints list`
    python scripts/check_installs.py readme-example README.md      # ## Python, as written
    python scripts/check_installs.py estimators                    # FMClassifier / FMRegressor
    python scripts/check_installs.py absent MODULE ...             # exit 1 if one imports
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def fail(message: str) -> None:
    print(f"check_installs: FAILED: {message}", file=sys.stderr)
    raise SystemExit(1)


def free_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def _request(url: str, body: dict | None = None, timeout: float = 30) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http(url: str, user: str | None) -> None:
    """Wait for /ping, then score two MovieLens rows (SageMaker's sparse JSON) and recommend."""
    deadline = time.monotonic() + 60
    while True:
        try:
            if _request(url + "/ping", timeout=2)[0] == 200:
                break
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() > deadline:
            fail(f"{url}/ping did not answer 200 within 60 s")
        time.sleep(0.3)
    # user 196 (key 195) with movies 242 and 302 (keys 943 + m - 1), as the notebook encodes them
    rows = [{"data": {"features": {"keys": [195, 943 + 241], "shape": [2625],
                                   "values": [1.0, 1.0]}}},
            {"data": {"features": {"keys": [195, 943 + 301], "shape": [2625],
                                   "values": [1.0, 1.0]}}}]
    status, raw = _request(url + "/invocations", {"instances": rows})
    if status != 200:
        fail(f"POST {url}/invocations answered {status}: {raw[:300]!r}")
    predictions = json.loads(raw)["predictions"]
    if len(predictions) != 2 or not all("score" in p for p in predictions):
        fail(f"/invocations answered {predictions!r}")
    print(f"  /invocations: {predictions}")
    if user is not None:
        status, raw = _request(url + "/recommend", {"user": user, "k": 5})
        if status != 200:
            fail(f"POST {url}/recommend answered {status}: {raw[:300]!r}")
        answer = json.loads(raw)
        items = answer.get("items") or answer.get("recommendations") or answer
        if not items:
            fail(f"/recommend answered no items: {answer!r}")
        print(f"  /recommend: {json.dumps(answer)[:200]}")


def endpoint_url(name: str, fmkit: str) -> None:
    endpoints = json.loads(subprocess.check_output([fmkit, "endpoints", "list", "--json"]))
    found = [e["url"] for e in endpoints if e["name"] == name]
    if not found:
        fail(f"endpoint {name!r} is not in `fmkit endpoints list --json`: {endpoints!r}")
    print(found[0])


def readme_example(readme: str) -> None:
    """Run the README's Python example exactly as written (the first block under ## Python)."""
    text = open(readme, encoding="utf-8").read()
    section = text.split("\n## Python\n", 1)
    if len(section) != 2:
        fail(f"{readme} has no '## Python' section")
    block = re.search(r"```python\n(.*?)```", section[1], re.S)
    if block is None:
        fail(f"{readme}: no ```python block under '## Python'")
    code = block.group(1)
    print("  running the README's Python example:\n" + "".join(
        f"    {line}\n" for line in code.splitlines()))
    namespace: dict = {"__name__": "__main__"}
    exec(compile(code, f"{readme} (## Python)", "exec"), namespace)
    proba = namespace.get("proba")
    if proba is None or len(proba) == 0:
        fail("the README example did not compute proba")
    print(f"  README example ran: {len(proba)} probabilities, predictor {namespace['predictor']!r}")


def estimators() -> None:
    """FMClassifier / FMRegressor: fit, predict, predict_proba, score, params, a clone."""
    import numpy as np

    from fmkit import FMClassifier, FMRegressor
    from fmkit.datasets.synthetic import make_planted_fm

    data = make_planted_fm(2000, 30, 3, task="binary_classifier", seed=1)
    X, y = data.batch.to_csr(), np.where(data.batch.labels > 0, "click", "none")
    clf = FMClassifier(num_factors=4, epochs=5, random_state=0)
    clf.fit(X[:1600], y[:1600], eval_set=(X[1600:], y[1600:]))
    proba = clf.predict_proba(X[1600:])
    accuracy = clf.score(X[1600:], y[1600:])
    if proba.shape != (400, 2) or not np.allclose(proba.sum(1), 1) or accuracy < 0.6:
        fail(f"FMClassifier: proba shape {proba.shape}, accuracy {accuracy}")
    twin = type(clf)(**clf.get_params()).set_params(epochs=2)
    twin.fit(X, y)
    reg_data = make_planted_fm(1500, 20, 2, seed=2)
    reg = FMRegressor(num_factors=2, epochs=5, random_state=0)
    r2 = reg.fit(reg_data.batch.to_csr(), reg_data.batch.labels).score(
        reg_data.batch.to_csr(), reg_data.batch.labels)
    print(f"  FMClassifier accuracy {accuracy:.3f}, FMRegressor R^2 {r2:.3f}, "
          f"scikit-learn present: {'sklearn' in sys.modules}")


def absent(modules: list[str]) -> None:
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        fail(f"{name} is importable in this install; it should not be")
    print(f"  not importable, as intended: {', '.join(modules)}")


def main(argv: list[str]) -> None:
    command, args = argv[0], argv[1:]
    if command == "free-port":
        free_port()
    elif command == "http":
        user = args[args.index("--recommend") + 1] if "--recommend" in args else None
        http(args[0], user)
    elif command == "endpoint-url":
        endpoint_url(args[0], args[1])
    elif command == "readme-example":
        readme_example(args[0])
    elif command == "estimators":
        estimators()
    elif command == "absent":
        absent(args)
    else:
        fail(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
