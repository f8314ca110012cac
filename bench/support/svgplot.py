"""A small SVG line chart, written by hand: stacked panels sharing one time axis.

Why not matplotlib: a plot in docs/ should be a text file a review can read and diff, and a
bench should not need a plotting library to draw four lines. This draws what
bench/soak.py records (one panel per measure, one line per node) and nothing more: axes
with a few round ticks, a legend per panel, no interaction.

    svg = line_chart([Panel("RSS (MiB)", {"node0": [(0.0, 81.2), (10.0, 82.0)]})],
                     x_label="minutes")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

Point = tuple[float, float]
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
WIDTH = 760
PANEL_H = 170
LEFT, RIGHT, TOP, GAP = 64, 120, 28, 44


@dataclass(frozen=True)
class Panel:
    """One chart: a title (with its unit) and named series of (x, y) points."""

    title: str
    series: dict[str, list[Point]]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high] (1, 2 or 5 times a power of
    ten apart)."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.2e}"


def _bounds(panels: Sequence[Panel]) -> tuple[float, float]:
    xs = [x for p in panels for pts in p.series.values() for x, _ in pts]
    return (min(xs), max(xs)) if xs else (0.0, 1.0)


def _panel(panel: Panel, top: float, x_ticks: list[float]) -> list[str]:
    ys = [y for pts in panel.series.values() for _, y in pts if math.isfinite(y)]
    y_ticks = nice_ticks(min(ys, default=0.0), max(ys, default=1.0), 4)
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    plot_w = WIDTH - LEFT - RIGHT

    def px(x: float) -> float:
        return LEFT + (x - x0) / ((x1 - x0) or 1.0) * plot_w

    def py(y: float) -> float:
        return top + PANEL_H - (y - y0) / ((y1 - y0) or 1.0) * PANEL_H

    out = [f'<text x="{LEFT}" y="{top - 8:.0f}" class="title">{escape(panel.title)}</text>',
           f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_H}" class="frame"/>']
    for y in y_ticks:
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
                   'class="grid"/>')
        out.append(f'<text x="{LEFT - 6}" y="{py(y) + 4:.1f}" text-anchor="end">'
                   f'{_label(y)}</text>')
    for x in x_ticks:
        out.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{top}" y2="{top + PANEL_H}" '
                   'class="grid"/>')
    for i, (name, points) in enumerate(sorted(panel.series.items())):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points if math.isfinite(y))
        if path:
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                       'stroke-width="1.5"/>')
        legend_y = top + 12 + 15 * i
        out.append(f'<line x1="{LEFT + plot_w + 10}" x2="{LEFT + plot_w + 28}" y1="{legend_y}" '
                   f'y2="{legend_y}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{LEFT + plot_w + 32}" y="{legend_y + 4}">{escape(name)}</text>')
    return out


def line_chart(panels: Sequence[Panel], *, x_label: str, title: str = "") -> str:
    """The SVG text of ``panels`` stacked top to bottom over one x axis."""
    x_ticks = nice_ticks(*_bounds(panels), 6)
    height = TOP + len(panels) * (PANEL_H + GAP) + 20
    body = [f'<text x="{WIDTH / 2:.0f}" y="16" text-anchor="middle" class="title">'
            f'{escape(title)}</text>'] if title else []
    top = float(TOP + 12)
    for panel in panels:
        body += _panel(panel, top, x_ticks)
        top += PANEL_H + GAP
    bottom = top - GAP
    plot_w = WIDTH - LEFT - RIGHT
    x0, x1 = x_ticks[0], x_ticks[-1]
    for x in x_ticks:
        pos = LEFT + (x - x0) / ((x1 - x0) or 1.0) * plot_w
        body.append(f'<text x="{pos:.1f}" y="{bottom + 16:.0f}" text-anchor="middle">'
                    f'{_label(x)}</text>')
    body.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{bottom + 32:.0f}" '
                f'text-anchor="middle">{escape(x_label)}</text>')
    style = ("<style>text{font:11px sans-serif;fill:#222}.title{font-weight:bold}"
             ".frame{fill:none;stroke:#888}.grid{stroke:#e4e4e4}</style>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
            f'height="{height + 20}" viewBox="0 0 {WIDTH} {height + 20}">\n{style}\n'
            '<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n")
