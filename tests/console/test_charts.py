"""The server-drawn SVG charts: axes, series and points land where the data says."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from fmkit.console.charts import Point, Series, line_chart, nice_ticks, scatter_chart
from fmkit.console.pages.jobs import curves

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML, or this raises


def test_nice_ticks_cover_the_range() -> None:
    ticks = nice_ticks(0.213, 0.987)
    assert ticks[0] <= 0.213 and ticks[-1] >= 0.987
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1 and steps.pop() in (0.1, 0.2, 0.25)
    assert nice_ticks(5, 5)[0] < 5 < nice_ticks(5, 5)[-1]


def test_line_chart_puts_lower_values_lower() -> None:
    svg = line_chart([Series("train", [0, 1, 2], [3.0, 2.0, 1.0]),
                      Series("validation", [0, 1, 2], [3.5, None, 2.5])], title="rmse")
    root = _parse(svg)
    lines = root.findall(f"{SVG}polyline")
    assert [ln.get("data-series") for ln in lines] == ["train", "validation"]
    pts = [tuple(map(float, p.split(","))) for p in lines[0].get("points").split()]
    assert pts[0][0] < pts[1][0] < pts[2][0]  # x grows with the epoch
    assert pts[0][1] < pts[1][1] < pts[2][1]  # SVG y grows downwards: 3 > 2 > 1
    assert lines[1].get("data-points") == "2"  # the None is a gap


def test_scatter_marks_the_best_and_links_points() -> None:
    svg = scatter_chart([Point(1, 0.5, "t1", "/jobs/a"), Point(2, 0.3, "t2", "/jobs/b", True)],
                        title="obj", x_label="trial", y_label="rmse", step=[(1, 0.5), (2, 0.3)])
    root = _parse(svg)
    assert len(root.findall(f"{SVG}a")) == 2
    assert len(root.findall(f".//{SVG}circle[@class='pt best-pt']")) == 1
    assert root.find(f"{SVG}polyline").get("class") == "best"


def test_log_axis_spans_decades() -> None:
    svg = scatter_chart([Point(0.001, 1, "a"), Point(0.3, 2, "b")], title="t", x_label="lr",
                        y_label="y", log_x=True)
    labels = re.findall(r'text-anchor="middle">([^<]+)</text>', svg)
    assert {"0.001", "0.01", "0.1", "1"} <= set(labels)


def test_titles_and_labels_are_escaped() -> None:
    svg = line_chart([Series("<script>", [0], [1.0])], title="a<b&c")
    assert "<script>" not in svg and "a&lt;b&amp;c" in svg
    _parse(svg)


def test_curves_one_chart_per_metric_with_final_test_point() -> None:
    epochs = [{"epoch": e, "train:rmse": 1 - e / 10, "validation:rmse": 1.1 - e / 20,
               "train:mse": 1.0, "seconds": 0.1} for e in range(4)]
    html = curves(epochs, {"test:rmse": 0.8, "train:rmse": 0.7})
    assert html.count("<figure") == 2  # rmse and mse; "seconds" is no metric
    rmse = html.split('data-metric="rmse"')[1].split("</figure>")[0]
    assert 'data-series="train" data-points="4"' in rmse
    assert "test epoch 3: 0.8" in rmse  # the final test value as one point
    assert "no per-epoch metrics" in curves([], {})
