"""Dependency-free SVG charts: line / scatter / step, stacked bars, CI intervals.

Each function returns one ``<svg>`` element as a string (no XML declaration, no
namespace URL — it is meant to be inlined in HTML; ``svg_document`` makes a
standalone file). All text is XML-escaped. Non-finite values are skipped (a line
breaks at them), as are values ≤ 0 on a log axis; an empty chart still draws its
axes and says "no data". Colours: Okabe–Ito (see ``_svg``).

Every drawn point carries hover text: a ``<title>`` child (shown by browsers as a
tooltip, no script) reading "series — x label: x, y label: y", or the point's
``Series.hover`` text when given. On lines with many points the hover targets are
thinned evenly to at most ``_MAX_HOVER`` per series (the line itself is complete).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

from ._svg import AXIS, BAD, GOOD, GRID, MUTED, PALETTE, WARN, Scale, attr, esc, finite, fmt_tick, log_ticks, nice_ticks

__all__ = ["Series", "line_chart", "scatter_chart", "bar_chart", "interval_chart", "svg_document"]

_FONT = 'font-family="system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif"'
_CHAR_W = 6.6          # approximate width of one 12 px character, for layout
_MAX_HOVER = 300       # hover targets per line series (evenly thinned beyond)


@dataclass(frozen=True, kw_only=True)
class Series:
    """One named data series. ``y_lo``/``y_hi``: optional error-bar ends per point;
    ``labels``: optional text per point (drawn by ``scatter_chart``); ``hover``:
    optional tooltip text per point (default: series name and both coordinates)."""
    name: str
    xs: Sequence[float]
    ys: Sequence[float]
    kind: Literal["line", "scatter", "step"] = "line"
    y_lo: Sequence[float] | None = None
    y_hi: Sequence[float] | None = None
    labels: Sequence[str] | None = None
    color: str | None = None
    dashed: bool = False
    hover: Sequence[str] | None = None


def svg_document(svg: str) -> str:
    """A standalone .svg file's text from a chart string."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            + svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def _open(width: int, height: int, title: str) -> list[str]:
    return [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{attr(title)}" {_FONT} font-size="12">',
            f"<title>{esc(title)}</title>",
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
            f'<text x="{width / 2:.1f}" y="20" text-anchor="middle" font-size="15" '
            f'font-weight="600" fill="{AXIS}">{esc(title)}</text>']


def _legend(items: list[tuple[str, str, str]], x0: float, y0: float, width: float) -> tuple[list[str], float]:
    """Legend entries (name, colour, marker: line|dot|box) wrapped into rows; returns
    (svg parts, height used)."""
    parts: list[str] = []
    x, y = x0, y0
    for name, color, marker in items:
        w = 22 + len(name) * _CHAR_W + 14
        if x > x0 and x + w > x0 + width:
            x, y = x0, y + 18
        if marker == "line":
            parts.append(f'<line x1="{x:.1f}" y1="{y - 4:.1f}" x2="{x + 16:.1f}" y2="{y - 4:.1f}" '
                         f'stroke="{color}" stroke-width="2.5"/>')
        elif marker == "dot":
            parts.append(f'<circle cx="{x + 8:.1f}" cy="{y - 4:.1f}" r="4" fill="{color}"/>')
        else:
            parts.append(f'<rect x="{x + 2:.1f}" y="{y - 10:.1f}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{x + 22:.1f}" y="{y:.1f}" fill="{AXIS}">{esc(name)}</text>')
        x += w
    return parts, (y - y0 + 18) if items else 0.0


def _axis_range(values: list[float], log: bool, fixed: tuple[float, float] | None, pad: float = 0.0):
    """(axis_lo, axis_hi, ticks) over the placeable values, widened by ``pad`` × span
    (so points do not sit on the frame) without crossing zero."""
    vals = [v for v in values if finite(v) and (not log or v > 0)]
    if fixed is not None:
        lo, hi = fixed
    elif vals:
        lo, hi = min(vals), max(vals)
        if log and pad:
            f = 10 ** (pad * max(math.log10(hi / lo), 0.3))
            lo, hi = lo / f, hi * f
        elif pad and hi > lo:
            span = hi - lo
            lo, hi = (max(lo - pad * span, 0.0) if lo >= 0 else lo - pad * span), \
                     (min(hi + pad * span, 0.0) if hi <= 0 else hi + pad * span)
    else:
        lo, hi = (1.0, 10.0) if log else (0.0, 1.0)
    return log_ticks(lo, hi) if log else nice_ticks(lo, hi)


def _frame(parts: list[str], sx: Scale, sy: Scale, xt: list[float], yt: list[float],
           x_label: str, y_label: str) -> None:
    top, bottom, left, right = sy.p1, sy.p0, sx.p0, sx.p1
    for t in yt:
        y = sy(t)
        parts.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(f'<text x="{left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end" fill="{MUTED}">{esc(fmt_tick(t))}</text>')
    for t in xt:
        x = sx(t)
        parts.append(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="{GRID}"/>')
        parts.append(f'<text x="{x:.1f}" y="{bottom + 16:.1f}" text-anchor="middle" fill="{MUTED}">{esc(fmt_tick(t))}</text>')
    parts.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" height="{bottom - top:.1f}" '
                 f'fill="none" stroke="{AXIS}"/>')
    parts.append(f'<text x="{(left + right) / 2:.1f}" y="{bottom + 36:.1f}" text-anchor="middle" '
                 f'fill="{AXIS}">{esc(x_label)}</text>')
    cy = (top + bottom) / 2
    parts.append(f'<text x="16" y="{cy:.1f}" text-anchor="middle" fill="{AXIS}" '
                 f'transform="rotate(-90 16 {cy:.1f})">{esc(y_label)}</text>')


def _xy_chart(series: Sequence[Series], *, title: str, x_label: str, y_label: str, log_x: bool,
              log_y: bool, hlines: Sequence[tuple[float, str]], vlines: Sequence[tuple[float, str]],
              width: int, height: int, x_range: tuple[float, float] | None,
              y_range: tuple[float, float] | None, point_labels: bool) -> str:
    parts = _open(width, height, title)
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    legend_items = [(s.name, c, "dot" if s.kind == "scatter" else "line")
                    for s, c in zip(series, colors) if s.name]
    leg, leg_h = _legend(legend_items, 70, 42, width - 90)
    parts += leg
    xs_all = [x for s in series for x in s.xs] + [x for x, _ in vlines]
    ys_all = [y for s in series for y in s.ys] + [y for y, _ in hlines]
    for s in series:
        ys_all += [y for y in (s.y_lo or ())] + [y for y in (s.y_hi or ())]
    scatter = any(s.kind == "scatter" for s in series)
    x0, x1, xt = _axis_range(xs_all, log_x, x_range, 0.05 if scatter else 0.0)
    y0, y1, yt = _axis_range(ys_all, log_y, y_range, 0.05)
    top = 30 + leg_h + 8
    sx = Scale(x0, x1, 70, width - 20, log_x)
    sy = Scale(y0, y1, height - 50, top, log_y)
    _frame(parts, sx, sy, xt, yt, x_label, y_label)
    clip = f"c{abs(hash((title, width, height))) % 10**8}"
    parts.append(f'<clipPath id="{clip}"><rect x="{sx.p0}" y="{sy.p1}" width="{sx.p1 - sx.p0}" '
                 f'height="{sy.p0 - sy.p1}"/></clipPath><g clip-path="url(#{clip})">')
    drawn = 0
    hover_parts: list[str] = []
    for s, color in zip(series, colors):
        pts = [(x, y) if sx.ok(x) and sy.ok(y) else None for x, y in zip(s.xs, s.ys)]
        drawn += sum(p is not None for p in pts)
        hover_parts += _hover_targets(s, pts, sx, sy, color, x_label, y_label)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        if s.kind in ("line", "step"):
            seg: list[str] = []
            prev: tuple[float, float] | None = None
            for p in pts + [None]:
                if p is None:
                    if len(seg) > 1:
                        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} '
                                     f'points="{" ".join(seg)}"/>')
                    elif len(seg) == 1:
                        px, py = seg[0].split(",")
                        parts.append(f'<circle cx="{px}" cy="{py}" r="2.5" fill="{color}"/>')
                    seg, prev = [], None
                    continue
                px, py = sx(p[0]), sy(p[1])
                if s.kind == "step" and prev is not None:
                    seg.append(f"{px:.1f},{prev[1]:.1f}")
                seg.append(f"{px:.1f},{py:.1f}")
                prev = (px, py)
        if s.y_lo is not None and s.y_hi is not None:
            for x, lo, hi in zip(s.xs, s.y_lo, s.y_hi):
                if sx.ok(x) and sy.ok(lo) and sy.ok(hi):
                    px = sx(x)
                    parts.append(f'<path d="M{px:.1f},{sy(lo):.1f}V{sy(hi):.1f}M{px - 4:.1f},{sy(lo):.1f}'
                                 f'h8M{px - 4:.1f},{sy(hi):.1f}h8" stroke="{color}" stroke-width="1.5" fill="none"/>')
    parts += hover_parts
    parts.append("</g>")
    if point_labels:
        for s in series:
            for x, y, lab in zip(s.xs, s.ys, s.labels or ()):
                if lab and sx.ok(x) and sy.ok(y) and x0 <= x <= x1 and y0 <= y <= y1:
                    px, py = sx(x), sy(y)
                    right = px + 6 + len(str(lab)) * _CHAR_W > sx.p1
                    parts.append(f'<text x="{px - 6 if right else px + 6:.1f}" y="{py - 6:.1f}" '
                                 f'text-anchor="{"end" if right else "start"}" font-size="11" '
                                 f'fill="{AXIS}">{esc(lab)}</text>')
    for y, label in hlines:
        if sy.ok(y) and y0 <= y <= y1:
            py = sy(y)
            parts.append(f'<line x1="{sx.p0}" y1="{py:.1f}" x2="{sx.p1}" y2="{py:.1f}" stroke="{BAD}" '
                         f'stroke-width="1.5" stroke-dasharray="5 3"/>')
            parts.append(f'<text x="{sx.p1 - 4}" y="{py - 4:.1f}" text-anchor="end" fill="{BAD}">{esc(label)}</text>')
    for x, label in vlines:
        if sx.ok(x) and x0 <= x <= x1:
            px = sx(x)
            parts.append(f'<line x1="{px:.1f}" y1="{sy.p1}" x2="{px:.1f}" y2="{sy.p0}" stroke="{MUTED}" '
                         f'stroke-width="1.5" stroke-dasharray="5 3"/>')
            parts.append(f'<text x="{px + 4:.1f}" y="{sy.p1 + 14}" fill="{MUTED}">{esc(label)}</text>')
    if drawn == 0:
        parts.append(f'<text x="{(sx.p0 + sx.p1) / 2:.1f}" y="{(sy.p0 + sy.p1) / 2:.1f}" '
                     f'text-anchor="middle" fill="{MUTED}" font-size="14">no data</text>')
    parts.append("</svg>")
    return "".join(parts)


def _hover_targets(s: Series, pts: list[tuple[float, float] | None], sx: Scale, sy: Scale, color: str,
                   x_label: str, y_label: str) -> list[str]:
    """A ``<circle>`` with a ``<title>`` per placeable point (thinned on long lines):
    transparent on lines (it only catches the pointer), the marker itself on scatters."""
    idx = [i for i, p in enumerate(pts) if p is not None]
    if s.kind != "scatter" and len(idx) > _MAX_HOVER:
        step = len(idx) / _MAX_HOVER
        idx = sorted({idx[min(int(k * step), len(idx) - 1)] for k in range(_MAX_HOVER)} | {idx[-1]})
    out = []
    for i in idx:
        x, y = pts[i]  # type: ignore[misc]
        if s.hover is not None and i < len(s.hover):
            text = s.hover[i]
        else:
            lab = f" ({s.labels[i]})" if s.labels is not None and i < len(s.labels) and s.labels[i] else ""
            text = f"{s.name}{lab} — {x_label}: {fmt_tick(x)}, {y_label}: {fmt_tick(y)}"
        opacity = 'fill-opacity="0"' if s.kind != "scatter" else 'fill-opacity="0.85"'
        r = 4 if s.kind == "scatter" else 3.5
        out.append(f'<circle class="pt" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{r}" fill="{color}" {opacity}>'
                   f'<title>{esc(text)}</title></circle>')
    return out


def line_chart(series: Sequence[Series], *, title: str, x_label: str, y_label: str,
               log_x: bool = False, log_y: bool = False,
               hlines: Sequence[tuple[float, str]] = (), vlines: Sequence[tuple[float, str]] = (),
               width: int = 720, height: int = 400, x_range: tuple[float, float] | None = None,
               y_range: tuple[float, float] | None = None) -> str:
    """Lines (or steps/points, per ``Series.kind``) with optional reference lines:
    ``hlines``/``vlines`` are ``(value, label)``; axis labels should carry units."""
    return _xy_chart(series, title=title, x_label=x_label, y_label=y_label, log_x=log_x, log_y=log_y,
                     hlines=hlines, vlines=vlines, width=width, height=height, x_range=x_range,
                     y_range=y_range, point_labels=False)


def scatter_chart(series: Sequence[Series], *, title: str, x_label: str, y_label: str,
                  log_x: bool = False, log_y: bool = False,
                  hlines: Sequence[tuple[float, str]] = (), vlines: Sequence[tuple[float, str]] = (),
                  width: int = 720, height: int = 400, x_range: tuple[float, float] | None = None,
                  y_range: tuple[float, float] | None = None) -> str:
    """Like ``line_chart`` with every series drawn as points and ``Series.labels``
    written next to them (e.g. config names on a cost/latency Pareto plot)."""
    pts = [Series(name=s.name, xs=s.xs, ys=s.ys, kind="scatter", y_lo=s.y_lo, y_hi=s.y_hi,
                  labels=s.labels, color=s.color, hover=s.hover) if s.kind != "scatter" else s for s in series]
    return _xy_chart(pts, title=title, x_label=x_label, y_label=y_label, log_x=log_x, log_y=log_y,
                     hlines=hlines, vlines=vlines, width=width, height=height, x_range=x_range,
                     y_range=y_range, point_labels=True)


def bar_chart(categories: Sequence[str], stacks: dict[str, Sequence[float]], *, title: str,
              y_label: str, horizontal: bool = False, width: int = 720, height: int = 400,
              totals: bool = True) -> str:
    """Stacked bars: one bar per category, one segment per ``stacks`` entry (e.g.
    weights / KV cache / activations / overhead per GPU). Negative or non-finite
    segments are drawn as 0. ``y_label`` is the value axis label (with its unit)."""
    parts = _open(width, height, title)
    names = list(stacks)
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(names))]
    leg, leg_h = _legend([(n, c, "box") for n, c in zip(names, colors)], 70, 42, width - 90)
    parts += leg
    val = [[max(float(stacks[n][i]), 0.0) if i < len(stacks[n]) and finite(stacks[n][i]) else 0.0
            for n in names] for i in range(len(categories))]
    tot = [sum(v) for v in val]
    v0, v1, vt = nice_ticks(0.0, max(tot, default=0.0) or 1.0)
    top = 30 + leg_h + 8
    label_w = max((len(str(c)) for c in categories), default=4) * _CHAR_W + 16 if horizontal else 70
    if horizontal:
        sv = Scale(0.0, v1, label_w, width - 30)
        band = (height - 50 - top) / max(len(categories), 1)
        _frame(parts, sv, Scale(0, 1, height - 50, top), vt, [], y_label, "")
    else:
        sv = Scale(0.0, v1, height - 50, top)
        band = (width - 20 - 70) / max(len(categories), 1)
        _frame(parts, Scale(0, 1, 70, width - 20), sv, [], vt, "", y_label)
    for i, cat in enumerate(categories):
        acc = 0.0
        for j, n in enumerate(names):
            a, b = sv(acc), sv(acc + val[i][j])
            acc += val[i][j]
            if horizontal:
                y = top + i * band + band * 0.15
                parts.append(f'<rect x="{a:.1f}" y="{y:.1f}" width="{b - a:.1f}" height="{band * 0.7:.1f}" '
                             f'fill="{colors[j]}"><title>{esc(cat)} · {esc(n)}: {esc(fmt_tick(val[i][j]))}</title></rect>')
            else:
                x = 70 + i * band + band * 0.15
                parts.append(f'<rect x="{x:.1f}" y="{b:.1f}" width="{band * 0.7:.1f}" height="{a - b:.1f}" '
                             f'fill="{colors[j]}"><title>{esc(cat)} · {esc(n)}: {esc(fmt_tick(val[i][j]))}</title></rect>')
        if horizontal:
            yc = top + (i + 0.5) * band + 4
            parts.append(f'<text x="{label_w - 6:.1f}" y="{yc:.1f}" text-anchor="end" fill="{AXIS}">{esc(cat)}</text>')
            if totals:
                parts.append(f'<text x="{sv(tot[i]) + 4:.1f}" y="{yc:.1f}" fill="{MUTED}">{esc(fmt_tick(tot[i]))}</text>')
        else:
            xc = 70 + (i + 0.5) * band
            parts.append(f'<text x="{xc:.1f}" y="{height - 34}" text-anchor="middle" fill="{AXIS}">{esc(cat)}</text>')
            if totals:
                parts.append(f'<text x="{xc:.1f}" y="{sv(tot[i]) - 4:.1f}" text-anchor="middle" '
                             f'fill="{MUTED}">{esc(fmt_tick(tot[i]))}</text>')
    if not categories:
        parts.append(f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle" fill="{MUTED}" '
                     f'font-size="14">no data</text>')
    parts.append("</svg>")
    return "".join(parts)


def interval_chart(items: Sequence[tuple[str, float, float, float]], *, title: str, x_label: str,
                   threshold: float | None = None, threshold_label: str = "threshold",
                   better: Literal["lower", "higher"] | None = None, log_x: bool = False,
                   width: int = 720, height: int | None = None) -> str:
    """One row per ``(label, value, lo, hi)``: the point estimate with its interval
    whisker, against a vertical ``threshold`` line. With ``better`` set, a row is
    green when its whole interval is on the good side, red when wholly on the bad
    side, orange when the interval straddles the threshold (undecided). A row whose
    ``lo`` and ``hi`` are both NaN has no interval (e.g. one simulation): only its
    value is drawn and written, and its colour follows the value."""
    row_h = 30
    height = height or max(160, 90 + row_h * len(items))
    parts = _open(width, height, title)
    label_w = max((len(str(it[0])) for it in items), default=4) * _CHAR_W + 16
    vals = [v for it in items for v in it[1:]] + ([threshold] if threshold is not None else [])
    x0, x1, xt = _axis_range(vals, log_x, None, 0.05)
    top = 40
    value_w = 150                                   # right column: "value [lo, hi]"
    sx = Scale(x0, x1, max(label_w, 70), width - value_w, log_x)
    sy = Scale(0, 1, height - 50, top)
    _frame(parts, sx, sy, xt, [], x_label, "")
    band = (height - 50 - top) / max(len(items), 1)
    for i, (label, v, lo, hi) in enumerate(items):
        yc = top + (i + 0.5) * band
        point_only = not finite(lo) and not finite(hi)
        if point_only:
            lo = hi = v
        color = PALETTE[0]
        if better and threshold is not None and finite(lo) and finite(hi):
            good_side = (hi <= threshold) if better == "lower" else (lo >= threshold)
            bad_side = (lo > threshold) if better == "lower" else (hi < threshold)
            color = GOOD if good_side else BAD if bad_side else WARN
        parts.append(f'<text x="{sx.p0 - 6:.1f}" y="{yc + 4:.1f}" text-anchor="end" fill="{AXIS}">{esc(label)}</text>')
        if sx.ok(lo) and sx.ok(hi) and not point_only:
            a, b = sx(lo), sx(hi)
            parts.append(f'<path d="M{a:.1f},{yc:.1f}H{b:.1f}M{a:.1f},{yc - 6:.1f}v12M{b:.1f},{yc - 6:.1f}v12" '
                         f'stroke="{color}" stroke-width="2" fill="none"/>')
        txt = (f"{fmt_tick(v) if finite(v) else '?'} [{fmt_tick(lo) if finite(lo) else '?'}, "
               f"{fmt_tick(hi) if finite(hi) else '?'}]") if not point_only else \
            (fmt_tick(v) if finite(v) else "?")
        parts.append(f'<text x="{sx.p1 + 8:.1f}" y="{yc + 4:.1f}" fill="{color}">{esc(txt)}</text>')
        if sx.ok(v):
            parts.append(f'<circle cx="{sx(v):.1f}" cy="{yc:.1f}" r="5" fill="{color}">'
                         f'<title>{esc(label)}: {esc(txt)}</title></circle>')
    if threshold is not None and sx.ok(threshold):
        px = sx(threshold)
        parts.append(f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{height - 50}" stroke="{BAD}" '
                     f'stroke-width="1.5" stroke-dasharray="5 3"/>')
        parts.append(f'<text x="{px + 4:.1f}" y="{top - 4}" fill="{BAD}">{esc(threshold_label)}</text>')
    if not items:
        parts.append(f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle" fill="{MUTED}" '
                     f'font-size="14">no data</text>')
    parts.append("</svg>")
    return "".join(parts)
