"""Server-side SVG charts: bars scale to the axis, labels are escaped, bad input is refused."""

from __future__ import annotations

import re

import pytest

from routstr.admin.charts import _nice_max, bar_chart


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
