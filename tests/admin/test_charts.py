"""Server-side SVG charts: bars scale to the axis, labels are escaped, bad input is refused."""

from __future__ import annotations

import re

import pytest

from routstr.admin.charts import _nice_max, bar_chart, grouped_bar_chart


def test_bars_are_proportional_and_the_axis_is_a_round_number():
    svg = bar_chart(["a", "b", "c"], [10, 5, 0], "Requests")
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]* height="([0-9.]+)"', svg)]
    assert len(heights) == 3 and heights[0] == pytest.approx(2 * heights[1]) and heights[2] == 0
    assert ">10<" in svg  # the axis top: 10 is already round
    assert _nice_max(0) == 1 and _nice_max(7) == 10 and _nice_max(1234) == 2000 and _nice_max(50) == 50


def test_labels_and_title_are_escaped():
    svg = bar_chart(["<script>"], [1], 'x" onload="evil')
    assert "<script>" not in svg and "&lt;script&gt;" in svg and 'onload="evil' not in svg


def test_one_label_per_value():
    with pytest.raises(ValueError):
        bar_chart(["a"], [1, 2], "t")


def test_two_series_share_one_axis_and_are_named():
    svg = grouped_bar_chart(["h1", "h2"], [("paid in", [40, 0]), ("refunded", [10, 20])], "Money", " sat")
    first = [float(h) for h in re.findall(r'<rect class="bar" x[^>]* height="([0-9.]+)"><title>', svg)]
    second = [float(h) for h in re.findall(r'<rect class="bar2" x[^>]* height="([0-9.]+)"><title>', svg)]
    assert (
        first[0] == pytest.approx(4 * second[0])
        and first[1] == 0
        and second[1] == pytest.approx(2 * second[0])
    )
    assert ">paid in<" in svg and ">refunded<" in svg and ">50 sat<" in svg  # legend; axis top over both
    with pytest.raises(ValueError):
        grouped_bar_chart(["a"], [("x", [1]), ("y", [1, 2])], "t")
