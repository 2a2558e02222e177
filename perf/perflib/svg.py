"""A latency-percentile plot written by hand: x = percentile on a log "nines" scale,
y = latency in microseconds (log scale), one line per target."""

from __future__ import annotations

import math
from html import escape

PCT_POINTS = [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9), ("p9999", 99.99)]
COLORS = {"direct": "#7f7f7f", "nginx": "#2ca02c", "haproxy": "#1f77b4", "portico": "#d62728"}
EXTRA_COLORS = ["#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def _nines(p: float) -> float:
    return -math.log10(1.0 - p / 100.0)


def _fmt_us(v: float) -> str:
    if v >= 1000:
        s = f"{v / 1000:g}"
        return f"{s} ms"
    return f"{v:g} µs"


def latency_svg(title: str, subtitle: str | list[str], series: dict[str, dict[str, float]]) -> str:
    """series: target -> {"p50": us, "p90": us, ...}"""
    W, H = 760, 460
    subs = [subtitle] if isinstance(subtitle, str) else list(subtitle)
    ml, mr, mt, mb = 80, 150, 44 + 16 * len(subs), 55
    pw, ph = W - ml - mr, H - mt - mb
    vals = [v for s in series.values() for v in s.values() if v and v > 0]
    if not vals:
        return ""
    lo = 10 ** math.floor(math.log10(min(vals)))
    hi = 10 ** math.ceil(math.log10(max(vals)))
    if hi <= lo:
        hi = lo * 10
    x0, x1 = _nines(PCT_POINTS[0][1]), _nines(PCT_POINTS[-1][1])

    def X(p):
        return ml + (_nines(p) - x0) / (x1 - x0) * pw

    def Y(v):
        return mt + ph - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * ph

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{ml}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
         ] + [f'<text x="{ml}" y="{40 + 16 * i}" fill="#555">{escape(s)}</text>' for i, s in enumerate(subs)]
    # y grid: 1-2-5 per decade
    dec = lo
    while dec <= hi * 1.0001:
        for m in (1, 2, 5):
            v = dec * m
            if v < lo * 0.999 or v > hi * 1.001:
                continue
            y = Y(v)
            o.append(f'<line x1="{ml}" y1="{y:.1f}" x2="{ml + pw}" y2="{y:.1f}" '
                     f'stroke="{"#ccc" if m == 1 else "#eee"}"/>')
            o.append(f'<text x="{ml - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#333">{escape(_fmt_us(v))}</text>')
        dec *= 10
    # x grid
    for _, p in PCT_POINTS:
        x = X(p)
        o.append(f'<line x1="{x:.1f}" y1="{mt}" x2="{x:.1f}" y2="{mt + ph}" stroke="#ddd"/>')
        o.append(f'<text x="{x:.1f}" y="{mt + ph + 18}" text-anchor="middle">{p:g}</text>')
    o.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    o.append(f'<text x="{ml + pw / 2:.1f}" y="{H - 12}" text-anchor="middle">percentile (log "nines" scale)</text>')
    o.append(f'<text transform="translate(18 {mt + ph / 2:.1f}) rotate(-90)" text-anchor="middle">'
             f'latency (log scale)</text>')
    extra = iter(EXTRA_COLORS)
    for i, (name, s) in enumerate(series.items()):
        color = COLORS.get(name) or next(extra, "#000")
        pts = [(X(p), Y(s[k])) for k, p in PCT_POINTS if s.get(k) and s[k] > 0]
        if not pts:
            continue
        o.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                 + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
        for (x, y), (k, _) in zip(pts, PCT_POINTS):
            o.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}">'
                     f'<title>{escape(name)} {k}: {s[k]:.0f} µs</title></circle>')
        ly = mt + 10 + i * 20
        o.append(f'<line x1="{ml + pw + 15}" y1="{ly}" x2="{ml + pw + 40}" y2="{ly}" stroke="{color}" stroke-width="2"/>')
        o.append(f'<text x="{ml + pw + 46}" y="{ly + 4}">{escape(name)}</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"
