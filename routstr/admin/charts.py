"""Bar charts as inline SVG, drawn on the server: no JavaScript, nothing fetched from a CDN.

Pure (data in, markup out); the markup is built from numbers and escaped labels only.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 720, 180, 56, 22, 10


def _nice_max(v: float) -> float:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``v``."""
    if v <= 0:
        return 1.0
    scale = 10 ** (len(str(int(v))) - 1)
    for step in (1, 2, 5, 10):
        if v <= step * scale:
            return float(step * scale)
    return float(10 * scale)


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str, unit: str = "") -> str:
    """One bar per value; labels under every few bars; the axis top and zero on the left."""
    return grouped_bar_chart(labels, [("", values)], title, unit)


def grouped_bar_chart(
    labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], title: str, unit: str = ""
) -> str:
    """Side by side bars per label, one per series (named in a legend when there are several)."""
    if not series or any(len(values) != len(labels) for _, values in series):
        raise ValueError("one label per value, in every series")
    top = _nice_max(max((v for _, values in series for v in values), default=0))
    plot_w, plot_h = WIDTH - PAD_LEFT, HEIGHT - PAD_BOTTOM - PAD_TOP
    n = max(len(labels), 1)
    slot = plot_w / n
    bar_w = slot * 0.7 / len(series)
    every = max(1, n // 8)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{PAD_LEFT - 6}" y="{PAD_TOP + 9}" text-anchor="end">{top:g}{escape(unit)}</text>',
        f'<text x="{PAD_LEFT - 6}" y="{PAD_TOP + plot_h}" text-anchor="end">0</text>',
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP + plot_h}" x2="{WIDTH}" y2="{PAD_TOP + plot_h}" stroke="#ccd"/>',
    ]
    if len(series) > 1:
        for k, (name, _) in enumerate(series):
            x = PAD_LEFT + 8 + k * 130
            parts.append(
                f'<rect class="{_css(k)}" x="{x}" y="{PAD_TOP}" width="10" height="10"/>'
                f'<text x="{x + 14}" y="{PAD_TOP + 9}">{escape(name)}</text>'
            )
    for i, label in enumerate(labels):
        x0 = PAD_LEFT + i * slot + slot * 0.15
        for k, (name, values) in enumerate(series):
            v = values[i]
            h = plot_h * (v / top)
            what = f"{escape(name)} " if name else ""
            parts.append(
                f'<rect class="{_css(k)}" x="{x0 + k * bar_w:.1f}" y="{PAD_TOP + plot_h - h:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}"><title>{escape(label)}: {what}{v:g}{escape(unit)}'
                "</title></rect>"
            )
        if i % every == 0:
            mid = x0 + slot * 0.35
            parts.append(f'<text x="{mid:.1f}" y="{HEIGHT - 6}" text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _css(k: int) -> str:
    return "bar" if k == 0 else "bar2"
