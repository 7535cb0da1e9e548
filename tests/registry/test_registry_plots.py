"""Learning-curve and tuning pictures are real image files; empty input is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmkit.errors import ConfigError
from fmkit.registry.plots import (
    learning_curve_metrics,
    plot_learning_curves,
    plot_tuning,
)

PNG = b"\x89PNG\r\n\x1a\n"


def test_learning_curves_png(tmp_path: Path) -> None:
    epochs = [{"epoch": e, "train:rmse": 1 / (e + 1), "validation:rmse": 1.1 / (e + 1),
               "train:mse": 1.0, "rows_per_s": 5.0} for e in range(4)]
    assert learning_curve_metrics(epochs) == ["rmse", "mse"]
    out = plot_learning_curves(epochs, tmp_path / "sub" / "curve.png", title="j")
    assert out.read_bytes()[:8] == PNG
    assert [p.name for p in out.parent.iterdir()] == ["curve.png"]  # no temporary left


def test_learning_curves_need_metrics(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no per-epoch metrics"):
        plot_learning_curves([], tmp_path / "c.png", title="j")


def test_tuning_plot_svg_with_missing_values(tmp_path: Path) -> None:
    trials = [(1, 0.70, "Completed"), (2, None, "Failed"), (3, 0.72, "Completed"),
              (4, 0.71, "Stopped")]
    out = plot_tuning(trials, tmp_path / "t.svg", objective="test:acc", direction="maximize")
    text = out.read_text()
    assert text.lstrip().startswith("<?xml") and "best 0.72" in text
