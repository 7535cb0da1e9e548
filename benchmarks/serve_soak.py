"""Soak: a mix of good and bad requests from 32 clients; the server must stay healthy.

Starts ``fmkit serve`` (payload limit 64 KB for the test) on the SageMaker u1 model (or a
random model of its shape) and cycles through good requests (sparse and dense JSON, JSON
Lines, recordio) and bad ones (malformed JSON, wrong content type, key out of range, shape
mismatch, missing shape, wrong dense length, empty instances, broken recordio, a body over
the limit, a bad endpoint name, a model error through the runtime façade). Every response
must carry the status expected for its body; afterwards /ping must still answer 200 and a
good request must still score correctly.

    .venv/bin/python benchmarks/serve_soak.py [--duration 10] [--append]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from serve_latency import ROOT, model_dir, stop, wait_ready  # noqa: E402


def bodies() -> list[dict]:
    from fmkit.io.protobuf import encode_batch
    from fmkit.sparse import SparseBatch

    def sparse(keys, shape=2625, values=None):
        feats = {"keys": keys, "shape": [shape], "values": values or [1.0] * len(keys)}
        return {"data": {"features": feats}}

    dense = [0.0] * 2625
    dense[10], dense[1000] = 1.0, 1.0
    good_rec = encode_batch(SparseBatch.from_arrays([0, 948, 5, 1000], [0, 2, 4], [1, 1, 1, 1],
                                                    feature_dim=2625))
    items = [
        ("good sparse JSON", "application/json",
         json.dumps({"instances": [sparse([0, 948])]}), 200),
        ("good batch of 50", "application/json",
         json.dumps({"instances": [sparse([u, 943 + u]) for u in range(50)]}), 200),
        ("good dense JSON", "application/json", json.dumps({"instances": [{"features": dense}]}),
         200),
        ("good JSON Lines", "application/jsonlines",
         "\n".join(json.dumps(sparse([u, 943 + 2 * u])) for u in range(5)) + "\n", 200),
        ("good recordio", "application/x-recordio-protobuf", good_rec.decode("latin-1"), 200),
        ("empty instances", "application/json", '{"instances": []}', 200),
        ("malformed JSON", "application/json", '{"instances": [{"data": ', 400),
        ("wrong content type", "text/plain", "hello", 415),
        ("key out of range", "application/json",
         json.dumps({"instances": [sparse([0, 99999])]}), 400),
        ("shape mismatch", "application/json",
         json.dumps({"instances": [sparse([0, 948], shape=2626)]}), 400),
        ("missing shape", "application/json",
         json.dumps({"instances": [{"data": {"features": {"keys": [0], "values": [1]}}}]}), 400),
        ("dense wrong length", "application/json",
         json.dumps({"instances": [{"features": [1.0, 0.0]}]}), 400),
        ("broken recordio", "application/x-recordio-protobuf",
         good_rec[:-9].decode("latin-1"), 400),
        ("body over the limit", "application/json",
         json.dumps({"instances": [sparse([0, 948])] * 1500}), 413),
        ("facade model error", "application/json", "{", 424, "/endpoints/fm/invocations"),
        ("facade bad name", "application/json", "{}", 400, "/endpoints/bad_name/invocations"),
        ("facade good", "application/json",
         json.dumps({"instances": [sparse([0, 948])]}), 200, "/endpoints/fm/invocations"),
    ]
    out = []
    for item in items:
        name, ctype, body, expect = item[:4]
        out.append({"name": name, "content_type": ctype, "body": body, "expect": expect,
                    "path": item[4] if len(item) > 4 else "/invocations"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--append", action="store_true")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="fmkit-soak-"))
    model, description = model_dir(tmp)
    mix = bodies()
    (tmp / "bodies.json").write_text(json.dumps(mix))
    from fmkit.jobs.endpoints import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "fmkit", "serve", "--model-dir", model,
                             "--port", str(port), "--max-payload-mb", str(64 / 1024),
                             "--log-level", "error"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_ready(port, proc)
        cmd = [sys.executable, str(HERE / "serve_load.py"), "--port", str(port), "--bodies-file",
               str(tmp / "bodies.json"), "--mode", "throughput", "--duration",
               str(args.duration), "--concurrency", str(args.concurrency), "--warmup", "34"]
        result = json.loads(subprocess.run(cmd, capture_output=True, text=True,
                                           check=True).stdout)
        url = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(url + "/ping", timeout=2) as resp:
            ping_after = resp.status
        req = urllib.request.Request(url + "/invocations", data=mix[0]["body"].encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            score_after = json.loads(resp.read())["predictions"][0]["score"]
        alive = proc.poll() is None
    finally:
        stop(proc)
    from fmkit.model_store import load_model as load
    from fmkit.inference.predictor import Predictor

    expected = Predictor(load(model)).predict_scores(
        np.eye(1, 2625, 0, dtype=np.float32) + np.eye(1, 2625, 948, dtype=np.float32))[0]
    ok_score = abs(score_after - float(expected)) < 1e-5
    n_bad = sum(1 for m in mix if m["expect"] != 200)
    summary = (f"{result['requests']} requests in {result['seconds']:.1f} s "
               f"({result['rps']:.0f} req/s) from {args.concurrency} clients, cycling "
               f"{len(mix)} bodies ({n_bad} bad); statuses {result['statuses']}; responses "
               f"with an unexpected status: {sum(result['unexpected'].values())}; 5xx: "
               f"{sum(v for k, v in result['statuses'].items() if k.startswith('5'))}; "
               f"server alive after: {alive}; /ping after: {ping_after}; good request scores "
               f"correctly after: {ok_score}")
    print(summary)
    if result["unexpected"]:
        print("unexpected:", result["unexpected"])
    if args.append:
        kinds = ", ".join(f"{m['name']} ({m['expect']})" for m in mix)
        section = (
            f"\n## Serving soak: mixed good and bad requests "
            f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n\n"
            f"- machine: `{' '.join(platform.uname())}`, nproc {os.cpu_count()}, load average "
            f"{load_start:.1f} at the start; shared with "
            "other helpers' jobs.\n"
            f"- model: {description}; `fmkit serve --max-payload-mb 0.0625`; bodies (expected "
            f"status): {kinds}.\n"
            f"- command: `.venv/bin/python benchmarks/serve_soak.py --append`\n\n"
            f"Result: {summary}.\n"
        )
        with open(HERE / "RESULTS.md", "a") as fh:
            fh.write(section)
    if result["unexpected"] or not (alive and ping_after == 200 and ok_score):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
