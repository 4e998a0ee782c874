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
    if len(labels) != len(values):
        raise ValueError("one label per value")
    top = _nice_max(max(values, default=0))
    plot_w, plot_h = WIDTH - PAD_LEFT, HEIGHT - PAD_BOTTOM - PAD_TOP
    n = max(len(values), 1)
    slot = plot_w / n
    every = max(1, n // 8)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{PAD_LEFT - 6}" y="{PAD_TOP + 9}" text-anchor="end">{top:g}{escape(unit)}</text>',
        f'<text x="{PAD_LEFT - 6}" y="{PAD_TOP + plot_h}" text-anchor="end">0</text>',
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP + plot_h}" x2="{WIDTH}" y2="{PAD_TOP + plot_h}" stroke="#ccd"/>',
    ]
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * (v / top)
        x = PAD_LEFT + i * slot + slot * 0.15
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{PAD_TOP + plot_h - h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}"><title>{escape(label)}: {v:g}{escape(unit)}</title></rect>'
        )
        if i % every == 0:
            mid = x + slot * 0.35
            parts.append(f'<text x="{mid:.1f}" y="{HEIGHT - 6}" text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
