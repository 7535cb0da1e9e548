"""Charts as inline SVG, drawn on the server: no script, no network, no plotting library.

:func:`line_chart` draws learning curves (one line per series); :func:`scatter_chart`
draws a tuning job's objective per trial or per hyperparameter value, optionally with a
step line (the best so far). Axes get "nice" ticks; a log x axis is used on request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from fmkit.console.html import e, num

COLORS = {"train": "#1f77b4", "validation": "#ff7f0e", "test": "#2ca02c"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
W, H = 520, 252
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 36, 40


@dataclass
class Series:
    """One line of a line chart: points (x, y); y may be None (a gap)."""

    label: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    color: str | None = None


@dataclass
class Point:
    x: float
    y: float
    label: str = ""
    href: str | None = None
    highlight: bool = False
    status: str = ""


@dataclass
class _Axis:
    lo: float
    hi: float
    log: bool = False
    ticks: list[float] = field(default_factory=list)

    def frac(self, v: float) -> float:
        if self.log:
            a, b, v = math.log10(self.lo), math.log10(self.hi), math.log10(max(v, 1e-300))
        else:
            a, b = self.lo, self.hi
        return 0.5 if b == a else (v - a) / (b - a)


def _finite(v: float | None) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Return round tick values covering [lo, hi] (about ``n`` of them)."""
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, n - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 0.5 and len(ticks) < 50:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _axis(values: Sequence[float], *, log: bool = False, integer: bool = False) -> _Axis:
    vals = [v for v in values if _finite(v) and (not log or v > 0)]
    if not vals:
        return _Axis(0.0, 1.0, False, [0.0, 0.5, 1.0])
    lo, hi = min(vals), max(vals)
    if log and hi > lo:
        a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        if b == a:
            b = a + 1
        return _Axis(10.0 ** a, 10.0 ** b, True, [10.0 ** k for k in range(a, b + 1)])
    ticks = nice_ticks(lo, hi)
    if integer:
        ticks = sorted({float(round(t)) for t in ticks if abs(t - round(t)) < 1e-9}) or ticks
    return _Axis(min(ticks[0], lo), max(ticks[-1], hi), False, ticks)


def _frame(x: _Axis, y: _Axis, title: str, x_label: str, y_label: str) -> list[str]:
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    out = [f'<text class="title" x="{LEFT}" y="15">{e(title)}</text>',
           f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/>']
    for t in y.ticks:
        py = TOP + ph * (1 - y.frac(t))
        out.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + pw}" y1="{py:.1f}" '
                   f'y2="{py:.1f}"/><text class="tick" x="{LEFT - 4}" y="{py + 3:.1f}" '
                   f'text-anchor="end">{e(num(t))}</text>')
    for t in x.ticks:
        px = LEFT + pw * x.frac(t)
        out.append(f'<line class="grid" y1="{TOP}" y2="{TOP + ph}" x1="{px:.1f}" '
                   f'x2="{px:.1f}"/><text class="tick" x="{px:.1f}" y="{TOP + ph + 13}" '
                   f'text-anchor="middle">{e(num(t))}</text>')
    out.append(f'<text class="label" x="{LEFT + pw / 2}" y="{H - 6}" '
               f'text-anchor="middle">{e(x_label)}</text>')
    out.append(f'<text class="label" transform="translate(12 {TOP + ph / 2}) rotate(-90)" '
               f'text-anchor="middle">{e(y_label)}</text>')
    return out


def _svg(parts: list[str], label: str, cls: str) -> str:
    return (f'<svg class="chart {e(cls)}" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
            f'role="img" aria-label="{e(label)}" xmlns="http://www.w3.org/2000/svg">'
            + "".join(parts) + "</svg>")


def line_chart(series: Sequence[Series], *, title: str, x_label: str = "epoch",
               y_label: str = "") -> str:
    """Return an SVG line chart of ``series`` (a point where only one epoch exists)."""
    xs = [x for s in series for x, y in zip(s.xs, s.ys, strict=True) if _finite(y)]
    ys = [y for s in series for y in s.ys if _finite(y)]
    x, y = _axis(xs, integer=True), _axis(ys)  # type: ignore[arg-type]
    parts = _frame(x, y, title, x_label, y_label)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    for k, s in enumerate(series):
        color = s.color or COLORS.get(s.label, PALETTE[k % len(PALETTE)])
        pts = [(LEFT + pw * x.frac(a), TOP + ph * (1 - y.frac(b)), a, b)
               for a, b in zip(s.xs, s.ys, strict=True) if _finite(b)]
        if not pts:
            continue
        if len(pts) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in pts)
            parts.append(f'<polyline class="series" data-series="{e(s.label)}" '
                         f'data-points="{len(pts)}" points="{path}" stroke="{color}"/>')
        for px, py, a, b in pts if len(pts) <= 60 else pts[-1:]:
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{color}">'
                         f"<title>{e(s.label)} epoch {e(num(a))}: {e(num(b))}</title></circle>")
        lx = W - RIGHT - 86 * (len(series) - k)  # legend under the title, right-aligned
        parts.append(f'<rect x="{lx}" y="{TOP - 10}" width="12" height="3" fill="{color}"/>'
                     f'<text class="legend" x="{lx + 16}" y="{TOP - 5}">{e(s.label)}</text>')
    return _svg(parts, title, "line")


def scatter_chart(points: Sequence[Point], *, title: str, x_label: str, y_label: str,
                  log_x: bool = False, step: Sequence[tuple[float, float]] | None = None,
                  integer_x: bool = False) -> str:
    """Return an SVG scatter of ``points`` (links on points with ``href``), with an
    optional step line ``step`` (the best objective so far)."""
    x = _axis([p.x for p in points], log=log_x, integer=integer_x)
    y = _axis([p.y for p in points])
    parts = _frame(x, y, title, x_label, y_label)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def at(a: float, b: float) -> tuple[float, float]:
        return LEFT + pw * x.frac(a), TOP + ph * (1 - y.frac(b))

    if step:
        coords: list[str] = []
        prev: tuple[float, float] | None = None
        for a, b in step:
            px, py = at(a, b)
            if prev is not None:
                coords.append(f"{px:.1f},{prev[1]:.1f}")
            coords.append(f"{px:.1f},{py:.1f}")
            prev = (px, py)
        parts.append(f'<polyline class="best" points="{" ".join(coords)}"/>')
    for p in points:
        if not (_finite(p.x) and _finite(p.y)) or (log_x and p.x <= 0):
            continue
        px, py = at(p.x, p.y)
        cls = "pt best-pt" if p.highlight else f"pt st-{e(p.status.lower())}"
        dot = (f'<circle class="{cls}" cx="{px:.1f}" cy="{py:.1f}" '
               f'r="{5 if p.highlight else 3.5}"><title>{e(p.label)}: {e(num(p.y))}'
               "</title></circle>")
        parts.append(f'<a href="{e(p.href)}">{dot}</a>' if p.href else dot)
    return _svg(parts, title, "scatter")
