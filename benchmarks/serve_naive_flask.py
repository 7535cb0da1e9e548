"""The naive baseline server: Flask + the torch model's forward pass per request.

What a first implementation typically looks like: Flask's threaded server, ``request.get_json``,
a Python loop over instances building torch tensors, ``FactorizationMachine.predict`` (the
training engine's forward), ``jsonify``. Only sparse and dense JSON instances, enough for the
benchmark.

    python benchmarks/serve_naive_flask.py --model-dir MODEL --port 8081
"""

from __future__ import annotations

import argparse
import logging

import torch
from flask import Flask, jsonify, request

from fmkit.model_store import load_model as load
from fmkit.model.fm import DeviceBatch, FactorizationMachine


def build_app(model_dir: str) -> Flask:
    artifact = load(model_dir)
    fm = FactorizationMachine(torch.tensor(artifact.w0[:1]), torch.tensor(artifact.w[0]),
                              torch.tensor(artifact.V[0]))
    binary = artifact.predictor_type == "binary_classifier"
    app = Flask("naive")

    @app.get("/ping")
    def ping() -> tuple[str, int]:
        return "", 200

    @app.post("/invocations")
    def invocations():  # type: ignore[no-untyped-def]
        payload = request.get_json(force=True)
        indices, rows, values = [], [], []
        for r, inst in enumerate(payload["instances"]):
            feats = inst["data"]["features"] if "data" in inst else inst["features"]
            if isinstance(feats, dict) and "keys" in feats:
                keys, vals = feats["keys"], feats["values"]
            else:
                dense = feats["values"] if isinstance(feats, dict) else feats
                keys = [i for i, v in enumerate(dense) if v]
                vals = [dense[i] for i in keys]
            indices += keys
            values += vals
            rows += [r] * len(keys)
        batch = DeviceBatch(torch.tensor(indices, dtype=torch.int64),
                            torch.tensor(rows, dtype=torch.int64),
                            torch.tensor(values, dtype=torch.float32),
                            len(payload["instances"]))
        with torch.no_grad():
            y = fm.predict(batch)
            if binary:
                y = torch.sigmoid(y)
        preds = []
        for s in y.tolist():
            p = {"score": s}
            if binary:
                p["predicted_label"] = 1.0 if s >= 0.5 else 0.0
            preds.append(p)
        return jsonify({"predictions": preds})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    build_app(args.model_dir).run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
