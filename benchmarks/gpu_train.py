#!/usr/bin/env python3
"""GPU training throughput: plain PyTorch FM (eager, compiled) vs fmkit's fused uniform-row step.

Data: synthetic click logs generated on the device: 39 fields, 1,000,000 features (one key
per field per row, Zipf within a field), labels from a planted FM (k = 8). Every method
trains one pass over the same rows (``--steps`` batches of 65,536) from the same
initialisation and learning rate, then scores 1,000,000 held-out rows; the table gives
rows/s (median step time, CUDA events, after warm-up steps that include compilation),
predicted bytes per row for fmkit's path, the fraction of the measured copy bandwidth,
and held-out AUC next to the planted model's AUC.

- plain: ``nn.Embedding`` (w, V) + ``torch.optim.Adam`` over the whole tables, the way
  most public FM code is written; eager and under ``torch.compile``.
- fmkit: ``fmkit.engine.fused.FusedUniformFM`` (row sums by reshape, gradient by
  ``index_add_`` into dense buffers, Adam over the table masked by touched rows = lazy
  row-sparse Adam); eager and under ``torch.compile``.

It checks correctness first, on the device: the fused step against a float64 reference
(autograd of the pairwise FM formula + a per-row lazy Adam loop), compiled against eager.

Runs standalone (fmkit need not be installed; only torch): ``python3 benchmarks/gpu_train.py``.
``--cpu-smoke`` runs every code path with tiny sizes on the CPU. With ``OUT`` set, the table
is also written to ``$OUT/gpu_results.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def log(*args: object) -> None:
    print(*args, flush=True)


def load_fused():
    """Load fmkit/engine/fused.py by path (no fmkit package import: numpy/scipy not needed)."""
    spec = importlib.util.spec_from_file_location("fmkit_engine_fused",
                                                  ROOT / "src" / "fmkit" / "engine" / "fused.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]  # torch.compile looks it up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


fused_mod = load_fused()


# --------------------------------------------------------------------------- timing
class Timer:
    """Per-step wall time: CUDA events on a GPU, perf_counter on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.pairs: list[tuple[object, object]] = []

    def start(self) -> object:
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def stop(self, start: object) -> None:
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            self.pairs.append((start, e))
        else:
            self.pairs.append((start, time.perf_counter()))

    def seconds(self) -> list[float]:
        if self.cuda:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) / 1000.0 for a, b in self.pairs]  # type: ignore[union-attr]
        return [b - a for a, b in self.pairs]  # type: ignore[operator]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def copy_bandwidth(device: torch.device, nbytes: int) -> float:
    """Measured device copy bandwidth in bytes/s (read + write counted)."""
    a = torch.empty(nbytes // 4, dtype=torch.float32, device=device)
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    sync(device)
    timer = Timer(device)
    for _ in range(10):
        s = timer.start()
        b.copy_(a)
        timer.stop(s)
    t = statistics.median(timer.seconds())
    return 2 * a.numel() * 4 / t


# --------------------------------------------------------------------------- data
def make_click(n_rows: int, fields: int, features: int, seed: int, device: torch.device,
               *, planted_k: int = 8, zipf: float = 1.1, chunk: int = 1 << 20):
    """Return (idx (N, L) int64, labels (N,) float32, planted logits (N,) float32)."""
    g = torch.Generator(device=device).manual_seed(seed)
    per = features // fields
    ranks = torch.arange(1, per + 1, dtype=torch.float64, device=device)
    p = ranks ** -zipf
    cdf = torch.cumsum(p / p.sum(), 0)
    w = torch.randn(features, generator=g, device=device) * 0.3
    V = torch.randn(features, planted_k, generator=g, device=device) * 0.15
    base = torch.arange(fields, device=device) * per
    idx = torch.empty(n_rows, fields, dtype=torch.int64, device=device)
    raw = torch.empty(n_rows, dtype=torch.float32, device=device)
    for start in range(0, n_rows, chunk):
        stop = min(start + chunk, n_rows)
        u = torch.rand(stop - start, fields, generator=g, device=device, dtype=torch.float64)
        local = torch.searchsorted(cdf, u).clamp_(max=per - 1)
        idx[start:stop] = local + base
        e = V[idx[start:stop]]
        s = e.sum(1)
        raw[start:stop] = w[idx[start:stop]].sum(1) + 0.5 * (s * s - (e * e).sum(1)).sum(1)
    w0 = -float(raw[: min(n_rows, chunk)].median()) - 1.0
    logits = raw + w0
    labels = torch.bernoulli(torch.sigmoid(logits), generator=g).to(torch.float32)
    return idx, labels, logits


def auc(labels: torch.Tensor, scores: torch.Tensor) -> float:
    """Area under the ROC curve by the rank-sum formula (ties: tiny with float scores)."""
    order = torch.argsort(scores.double())
    ranks = torch.empty_like(order, dtype=torch.float64)
    ranks[order] = torch.arange(1, scores.numel() + 1, dtype=torch.float64,
                                device=scores.device)
    pos = labels > 0.5
    n_pos = int(pos.sum())
    n_neg = scores.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# --------------------------------------------------------------------------- models
class PlainFM(torch.nn.Module):
    """nn.Embedding FM, as most public code writes it."""

    def __init__(self, features: int, k: int, init: dict[str, torch.Tensor]) -> None:
        super().__init__()
        device = init["V"].device
        self.emb = torch.nn.Embedding(features, k, device=device)
        self.lin = torch.nn.Embedding(features, 1, device=device)
        self.bias = torch.nn.Parameter(init["w0"].clone())
        with torch.no_grad():
            self.emb.weight.copy_(init["V"])
            self.lin.weight.copy_(init["w"].unsqueeze(1))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        e = self.emb(idx)
        s = e.sum(1)
        return self.bias + self.lin(idx).sum((1, 2)) + 0.5 * (s * s - (e * e).sum(1)).sum(1)


def plain_trainer(features: int, k: int, init: dict[str, torch.Tensor], lr: float,
                  compiled: bool):
    model = PlainFM(features, k, init)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step(idx: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = model(idx)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=False)
        return loss.detach()

    fn = torch.compile(step) if compiled else step

    @torch.no_grad()
    def predict(idx: torch.Tensor) -> torch.Tensor:
        return model(idx)

    return fn, predict


def fmkit_trainer(features: int, k: int, init: dict[str, torch.Tensor], lr: float,
                  compiled: bool, kernel: str = "torch"):
    fm = fused_mod.FusedUniformFM(init["w0"], init["w"], init["V"],
                                  lr={"bias": lr, "linear": lr, "factors": lr},
                                  wd={"bias": 0.0, "linear": 0.0, "factors": 0.0},
                                  kernel=kernel)
    if kernel == "triton":
        # forward + gradient compiled; the masked Adam is the hand-written Triton kernel
        accumulate = torch.compile(fm.accumulate) if compiled else fm.accumulate

        def fn(idx: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            loss = accumulate(idx, y)
            fm.apply()
            return loss
    else:
        fn = torch.compile(fm.step) if compiled else fm.step

    @torch.no_grad()
    def predict(idx: torch.Tensor) -> torch.Tensor:
        return fm.predict(idx)

    predict.touched_fraction = lambda: float(fm.touched.float().mean())  # type: ignore[attr-defined]
    return fn, predict


def fmkit_triton_trainer(features: int, k: int, init: dict[str, torch.Tensor], lr: float,
                         compiled: bool):
    return fmkit_trainer(features, k, init, lr, compiled, kernel="triton")


# --------------------------------------------------------------------------- correctness
def reference_check(device: torch.device) -> list[str]:
    """Fused step (eager and compiled) vs float64 autograd + per-row lazy Adam; raise on error."""
    g = torch.Generator(device="cpu").manual_seed(0)
    F, L, K, B, steps = 50, 5, 4, 64, 3
    lr = {"bias": 0.05, "linear": 0.02, "factors": 0.03}
    wd = {"bias": 0.01, "linear": 0.001, "factors": 0.002}
    # rows hold L distinct keys drawn from the first 40 of 50 features: 10 rows stay untouched
    idx_all = torch.stack([torch.randperm(40, generator=g)[:L] for _ in range(B * steps)])
    y_all = (torch.rand(B * steps, generator=g) < 0.4).float()
    w0 = torch.randn(1, generator=g) * 0.1
    w = torch.randn(F, generator=g) * 0.1
    V = torch.randn(F, K, generator=g) * 0.1
    # float64 reference
    P = {"bias": w0.double().clone(), "linear": w.double().clone(), "factors": V.double().clone()}
    M = {n: torch.zeros_like(p) for n, p in P.items()}
    S = {n: torch.zeros_like(p) for n, p in P.items()}
    for t in range(1, steps + 1):
        idx = idx_all[(t - 1) * B:t * B]
        y = y_all[(t - 1) * B:t * B].double()
        params = {n: p.clone().requires_grad_(True) for n, p in P.items()}
        out = []
        for r in range(B):
            keys = idx[r].tolist()
            val = params["bias"][0] + sum(params["linear"][i] for i in keys)
            for a in range(L):
                for b in range(a + 1, L):
                    val = val + (params["factors"][keys[a]] * params["factors"][keys[b]]).sum()
            out.append(val)
        logits = torch.stack(out)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum") / B
        loss.backward()
        factor = math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        touched = sorted(set(idx.reshape(-1).tolist()))
        for n in P:
            rows = [0] if n == "bias" else touched
            for r in rows:
                gr = params[n].grad[r] + wd[n] * P[n][r]
                M[n][r] = 0.9 * M[n][r] + 0.1 * gr
                S[n][r] = 0.999 * S[n][r] + 0.001 * gr * gr
                P[n][r] = P[n][r] - lr[n] * factor * M[n][r] / (torch.sqrt(S[n][r]) + 1e-8)
    lines = []
    variants = [("eager", False, "torch"), ("compiled", True, "torch")]
    if fused_mod.triton_available() and (device.type == "cuda"
                                         or os.environ.get("TRITON_INTERPRET") == "1"):
        variants.append(("triton kernel", False, "triton"))
    for name, compiled, kernel in variants:
        fm = fused_mod.FusedUniformFM(w0.to(device), w.to(device), V.to(device), lr=lr, wd=wd,
                                      kernel=kernel)
        step = torch.compile(fm.step) if compiled else fm.step
        for t in range(steps):
            step(idx_all[t * B:(t + 1) * B].to(device), y_all[t * B:(t + 1) * B].to(device))
        sync(device)
        err = max(float((fm.w0.cpu().double() - P["bias"]).abs().max()),
                  float((fm.w.cpu().double() - P["linear"]).abs().max()),
                  float((fm.V.cpu().double() - P["factors"]).abs().max()))
        untouched_same = bool(torch.equal(fm.V[40:].cpu(), V[40:]))
        lines.append(f"fused step ({name}) vs float64 reference after {steps} steps: max abs "
                     f"error {err:.2e}; untouched rows unchanged: {untouched_same}")
        log(lines[-1])
        if not (err < 1e-5 and untouched_same):
            raise AssertionError(lines[-1])
    # the plain model's forward is the same FM
    init = {"w0": w0.to(device), "w": w.to(device), "V": V.to(device)}
    plain = PlainFM(F, K, init)
    fm = fused_mod.FusedUniformFM(w0.to(device), w.to(device), V.to(device), lr=lr, wd=wd)
    x = idx_all[:B].to(device)
    with torch.no_grad():
        diff = float((plain(x) - fm.predict(x)).abs().max())
    lines.append(f"plain vs fused forward: max abs difference {diff:.2e}")
    log(lines[-1])
    if diff > 1e-5:
        raise AssertionError(lines[-1])
    return lines


def engine_checks(device: torch.device) -> list[str]:
    """fmkit's trainer on the device: fused fast path vs row-sparse path, and the NCCL
    gradient exchange (one rank). Needs the fmkit package's dependencies (numpy, scipy);
    reported as skipped without them."""
    try:
        import numpy as np

        from fmkit.config import FMConfig
        from fmkit.datasets.synthetic import make_click_data
        from fmkit.engine.trainer import Trainer
    except Exception as exc:  # noqa: BLE001 - a missing dependency only skips these checks
        return [f"engine checks skipped ({type(exc).__name__}: {exc})"]
    lines = []
    try:
        data = make_click_data(2000, num_fields=8, feature_dim=4000, seed=3).batch
        cfg = FMConfig.from_values(dict(predictor_type="binary_classifier", num_factors=8,
                                        optimizer="adam", factors_lr=0.01, linear_lr=0.01,
                                        bias_lr=0.01, device=device.type, seed=0))
        fast, slow = Trainer(cfg, 4000, fused=True), Trainer(cfg, 4000, fused=False)
        for start in range(0, 2000, 500):
            fast.step(data.slice(start, start + 500))
            slow.step(data.slice(start, start + 500))
        err = float((fast.model.V - slow.model.V).abs().max())
        kernel = fast.fast_path.fm.kernel if fast.fast_path else "none"
        lines.append(f"trainer fused fast path ({kernel}) vs row-sparse path on {device.type}, "
                     f"4 steps: max abs V difference {err:.2e}")
        if not err < 1e-5:
            raise AssertionError(lines[-1])
    except Exception as exc:  # noqa: BLE001
        lines.append(f"trainer fast-path check FAILED: {type(exc).__name__}: {exc}")
    if device.type == "cuda":
        try:
            import torch.distributed as dist

            from fmkit.distributed.launch import (
                Rendezvous,
                free_port,
                init_process_group,
            )
            from fmkit.distributed.strategy import DistributedStrategy
            from fmkit.engine.strategy import LocalStrategy

            init_process_group(Rendezvous(0, 1, "127.0.0.1", free_port()), backend="nccl",
                               timeout_s=60)
            try:
                strategy, local = DistributedStrategy(), LocalStrategy()
                strategy.setup(1000, device)
                local.setup(1000, device)
                g = torch.Generator(device="cpu").manual_seed(1)
                idx = torch.randint(0, 1000, (5000,), generator=g).to(device)
                gw = torch.randn(5000, generator=g).to(device)
                gV = torch.randn(5000, 16, generator=g).to(device)
                gw0 = torch.randn(1, generator=g).to(device)
                k1, w1, v1, b1 = strategy.reduce_gradients(idx, gw, gV, gw0)
                k2, w2, v2, b2 = local.reduce_gradients(idx, gw, gV, gw0)
                o1, o2 = torch.argsort(k1), torch.argsort(k2)
                err = float((v1[o1] - v2[o2]).abs().max())
                same = bool(torch.equal(k1[o1], k2[o2]))
                lines.append(f"NCCL row-sparse exchange (1 rank) vs local sums: keys equal "
                             f"{same}, max abs difference {err:.2e}")
                if not (same and err < 1e-5 and torch.allclose(b1, b2)):
                    raise AssertionError(lines[-1])
            finally:
                dist.destroy_process_group()
        except Exception as exc:  # noqa: BLE001
            lines.append(f"NCCL exchange check FAILED: {type(exc).__name__}: {exc}")
    for line in lines:
        log(line)
    del np
    return lines


# --------------------------------------------------------------------------- benchmark
def run_one(name: str, make, data, test, args, k: int, device: torch.device,
            bandwidth: float) -> dict[str, object]:
    idx, labels = data
    g = torch.Generator(device="cpu").manual_seed(7)
    rate = float(labels.mean())
    init = {"w0": torch.full((1,), math.log(rate / (1 - rate))).to(device),
            "w": torch.zeros(args.features).to(device),
            "V": (torch.randn(args.features, k, generator=g) * 0.01).to(device)}
    row: dict[str, object] = {"method": name, "k": k}
    t0 = time.perf_counter()
    try:
        step, predict = make(args.features, k, init, args.lr, "compiled" in name)
        timer = Timer(device)
        B = args.batch
        for i in range(args.steps):
            x, y = idx[i * B:(i + 1) * B], labels[i * B:(i + 1) * B]
            if i < args.warmup:
                step(x, y)
                sync(device)
                continue
            s = timer.start()
            step(x, y)
            timer.stop(s)
        times = timer.seconds()
        med = statistics.median(times)
        scores = torch.cat([predict(test[0][i:i + B]) for i in range(0, test[0].shape[0], B)])
        row.update(rows_per_s=B / med, step_ms=med * 1e3, auc=auc(test[1], scores.float()),
                   rows=args.steps * B, seconds=time.perf_counter() - t0)
        if name.startswith("fmkit"):
            touched = predict.touched_fraction() if "triton" in name else 1.0
            row["touched"] = predict.touched_fraction()
            per_row = fused_mod.bytes_per_step(B, args.fields, args.features, k, touched) / B
            row["bytes_per_row"] = per_row
            row["bandwidth_fraction"] = per_row * (B / med) / bandwidth
        log(f"  {name:16s} k={k:3d}: {B / med / 1e6:8.2f} M rows/s (median step "
            f"{med * 1e3:.3f} ms over {len(times)} steps), held-out AUC {row['auc']:.4f}, "
            f"{row['seconds']:.1f} s incl. compile")
    except Exception as exc:  # keep going: one failing method must not lose the others
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        log(f"  {name} k={k}: FAILED {row['error']}")
        traceback.print_exc()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU")
    ap.add_argument("--features", type=int, default=1_000_000)
    ap.add_argument("--fields", type=int, default=39)
    ap.add_argument("--batch", type=int, default=65536)
    ap.add_argument("--steps", type=int, default=48, help="training steps (one pass)")
    ap.add_argument("--warmup", type=int, default=6, help="untimed first steps")
    ap.add_argument("--test-rows", type=int, default=1_000_000)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--ks", default="16,64")
    ap.add_argument("--methods", default="plain-eager,fmkit-compiled-triton,fmkit-compiled,"
                                         "plain-compiled,fmkit-eager")
    ap.add_argument("--budget-s", type=float, default=300.0,
                    help="start no new method after this many seconds")
    args = ap.parse_args()
    if args.cpu_smoke:
        args.features, args.batch, args.steps, args.warmup, args.test_rows = 3900, 512, 6, 2, 4096
        args.ks = "4"
        device = torch.device("cpu")
    else:
        if not torch.cuda.is_available():
            sys.exit("no CUDA device; use --cpu-smoke on a CPU")
        device = torch.device("cuda")
        torch.backends.cuda.matmul.allow_tf32 = True
    started = time.perf_counter()
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"
    log(f"device: {name}; torch {torch.__version__}; features={args.features}, "
        f"fields={args.fields}, batch={args.batch}, steps={args.steps} (warm-up {args.warmup})")
    checks = reference_check(device)
    checks += engine_checks(device)
    bandwidth = copy_bandwidth(device, 1 << (30 if device.type == "cuda" else 24))
    log(f"measured copy bandwidth: {bandwidth / 1e12:.3f} TB/s")
    n_train = args.batch * args.steps
    t0 = time.perf_counter()
    idx, labels, logits = make_click(n_train + args.test_rows, args.fields, args.features, 1,
                                     device)
    train = (idx[:n_train], labels[:n_train])
    test_idx, test_labels = idx[n_train:], labels[n_train:]
    planted = auc(test_labels, logits[n_train:])
    log(f"data: {n_train} train + {args.test_rows} held-out rows in "
        f"{time.perf_counter() - t0:.1f} s; click rate {float(labels.mean()):.3f}; planted "
        f"model's held-out AUC {planted:.4f}")
    makers = {"plain-eager": plain_trainer, "plain-compiled": plain_trainer,
              "fmkit-eager": fmkit_trainer, "fmkit-compiled": fmkit_trainer,
              "fmkit-compiled-triton": fmkit_triton_trainer}
    rows = []
    for k in [int(x) for x in args.ks.split(",")]:
        for method in args.methods.split(","):
            if "triton" in method and not fused_mod.triton_available():
                rows.append({"method": method, "k": k, "error": "skipped: triton not installed"})
                continue
            if time.perf_counter() - started > args.budget_s:
                rows.append({"method": method, "k": k,
                             "error": f"skipped: past the {args.budget_s:.0f} s budget"})
                log(f"  {method} k={k}: skipped (time budget)")
                continue
            rows.append(run_one(method, makers[method], train, (test_idx, test_labels), args, k,
                                device, bandwidth))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    report = render(rows, args, name, bandwidth, planted, checks,
                    time.perf_counter() - started, args.cpu_smoke)
    log(report)
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "gpu_results.md").write_text(report)
        log(f"wrote {Path(out) / 'gpu_results.md'}")


def render(rows, args, device_name, bandwidth, planted, checks, seconds, smoke) -> str:
    try:
        uname = subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    except OSError:
        uname = platform.platform()
    lines = [
        f"## GPU training throughput ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})"
        + (" [CPU smoke run]" if smoke else ""),
        "",
        f"- device: {device_name}; measured copy bandwidth {bandwidth / 1e12:.3f} TB/s",
        f"- machine: `{uname}`, nproc {os.cpu_count()}; torch {torch.__version__}",
        f"- command: `python3 benchmarks/gpu_train.py{' --cpu-smoke' if smoke else ''}`",
        f"- data: {args.fields} fields, {args.features:,} features, batch {args.batch:,}, "
        f"{args.steps} steps = {args.steps * args.batch:,} rows (one pass, the same rows and "
        f"initialisation for every method, Adam lr {args.lr}); {args.test_rows:,} held-out "
        f"rows; planted model's held-out AUC {planted:.4f}",
        f"- timing: median of CUDA-event step times after {args.warmup} warm-up steps "
        "(compilation included in the warm-up); total run "
        f"{seconds:.0f} s",
        "- correctness: " + "; ".join(checks),
        "",
        "| method | k | rows/s | step ms | predicted bytes/row | fraction of copy bandwidth "
        "| rows touched/step | held-out AUC | planted AUC |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['k']} | {r['error']} | | | | | | |")
            continue
        bpr = f"{r['bytes_per_row']:,.0f}" if "bytes_per_row" in r else "-"
        frac = f"{r['bandwidth_fraction']:.2f}" if "bandwidth_fraction" in r else "-"
        touched = f"{r['touched']:.2f}" if "touched" in r else "-"
        lines.append(f"| {r['method']} | {r['k']} | {r['rows_per_s'] / 1e6:.2f} M | "
                     f"{r['step_ms']:.3f} | {bpr} | {frac} | {touched} | {r['auc']:.4f} | "
                     f"{planted:.4f} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
