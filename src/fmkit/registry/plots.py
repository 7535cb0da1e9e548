"""Pictures of registry records: learning curves of a job, objective per trial of a tuning job.

matplotlib (Agg backend, no display needed) is imported when a plot is drawn. Files are
written to a temporary name and renamed, so a failed draw leaves no half-written image.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fmkit.errors import ConfigError


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - matplotlib is in the 'tune' extra
        raise ConfigError("plots need matplotlib: pip install 'fmkit[tune]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    from fmkit.io.paths import atomic_write

    target = Path(path)
    with atomic_write(str(target)) as f:
        fig.savefig(f, format=(target.suffix or ".png")[1:], dpi=110, bbox_inches="tight")
    return target


def learning_curve_metrics(epochs: Sequence[dict[str, Any]]) -> list[str]:
    """Return the bare metric names with per-epoch values (``rmse`` for ``train:rmse``)."""
    names: list[str] = []
    for logs in epochs:
        for key in logs:
            channel, sep, metric = key.partition(":")
            if sep and channel in ("train", "validation") and metric not in names:
                names.append(metric)
    return names


def plot_learning_curves(
    epochs: Sequence[dict[str, Any]],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    metrics: Sequence[str] | None = None,
) -> Path:
    """Draw train and validation metrics per epoch, one panel per metric; return the path.

    Parameters
    ----------
    epochs : sequence of dict
        Per-epoch logs, each with ``epoch`` and ``train:<m>`` / ``validation:<m>`` keys.
    path : path-like
        Image file (format from the extension: .png, .svg, .pdf).
    metrics : sequence of str, optional
        Bare metric names to draw; default: every metric present.

    Raises
    ------
    ConfigError
        No per-epoch metrics to draw.
    """
    names = list(metrics) if metrics is not None else learning_curve_metrics(epochs)
    if not epochs or not names:
        raise ConfigError(f"{title or 'this job'} has no per-epoch metrics to plot.")
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    cols = min(2, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.4 * rows), squeeze=False)
    x = [int(e.get("epoch", i)) + 1 for i, e in enumerate(epochs)]
    for ax, name in zip(axes.flat, names):
        for channel, style in (("train", "-o"), ("validation", "-s")):
            key = f"{channel}:{name}"
            ys = [e.get(key) for e in epochs]
            pts = [(a, b) for a, b in zip(x, ys) if isinstance(b, (int, float))
                   and math.isfinite(b)]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, markersize=3,
                        label=channel)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_tuning(
    trials: Sequence[tuple[int, float | None, str]],
    path: str | os.PathLike[str],
    *,
    objective: str,
    direction: str,
    title: str = "",
) -> Path:
    """Draw the objective of every trial and the best-so-far line; return the path.

    Parameters
    ----------
    trials : sequence of (trial_number, objective_value or None, status)
        Trials without a value (failed, pruned) are marked on the x axis.
    direction : {'minimize', 'maximize'}
        Which way "best so far" goes.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ordered = sorted(trials, key=lambda t: t[0])
    done = [(n, v) for n, v, _ in ordered if v is not None and math.isfinite(v)]
    if done:
        ax.plot([n for n, _ in done], [v for _, v in done], "o", label="trial objective")
        best: list[float] = []
        for _, v in done:
            if not best:
                best.append(v)
            else:
                pick = max if direction == "maximize" else min
                best.append(pick(best[-1], v))
        ax.step([n for n, _ in done], best, where="post", color="C3", label="best so far")
        i = best.index(best[-1])
        ax.annotate(f"best {best[-1]:.4g}", (done[i][0], done[i][1]),
                    textcoords="offset points", xytext=(6, 6))
    missing = [(n, s) for n, v, s in ordered if v is None or not math.isfinite(v)]
    if missing:
        y0 = min((v for _, v in done), default=0.0)
        ax.plot([n for n, _ in missing], [y0] * len(missing), "x", color="grey",
                label="no value (failed or pruned)")
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(objective)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or f"{objective} ({direction})")
    fig.tight_layout()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)
