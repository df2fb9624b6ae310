"""The dashboard's two pictures, drawn without a plotting library so a refresh stays cheap.

`timeline_svg`: an inline SVG of the last minutes of a session: the fused sentiment (a line
coloured red -> grey -> green by value, its 1-minute rolling mean dashed, the alert threshold)
above the per-modality signals scaled to [0, 1] (voice energy and pitch, smile, and a band
where a face was present). `masks_html`: MMLatch's top-down masks of the latest window as one
heatmap per modality (time steps left to right, feature dimensions averaged into at most
``max_bins`` rows, one colour scale for the three: their min..max, printed), PNG in a data
URI.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from html import escape

import numpy as np
from PIL import Image

from realtime.dashboard.session_log import LogRow

W, H = 900.0, 300.0
LEFT, RIGHT = 44.0, 10.0
TOP_Y0, TOP_Y1 = 22.0, 176.0  # sentiment panel (y of +3, y of -3)
BOT_Y0, BOT_Y1 = 206.0, 282.0  # signal panel (y of 1, y of 0)
ENERGY_DB_RANGE = (-60.0, 0.0)
PITCH_HZ_RANGE = (75.0, 300.0)
SIGNAL_COLOURS = {"energy": "#38bdf8", "pitch": "#a78bfa", "smile": "#f59e0b"}
MASK_ORDER = ("text", "audio", "video")

# dark blue -> purple -> pink -> orange -> pale yellow
_PALETTE = np.array(
    [[11, 16, 38], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109],
     [252, 253, 191]], dtype=np.float32)


def _x(t_s: float, t0_s: float, span_s: float) -> float:
    return LEFT + (t_s - t0_s) / span_s * (W - LEFT - RIGHT)


def _y_sentiment(v: float) -> float:
    v = max(-3.0, min(3.0, v))
    return TOP_Y0 + (3.0 - v) / 6.0 * (TOP_Y1 - TOP_Y0)


def _y_unit(v: float) -> float:
    v = max(0.0, min(1.0, v))
    return BOT_Y1 - v * (BOT_Y1 - BOT_Y0)


def _unit(value: float, lo: float, hi: float) -> float:
    return (value - lo) / (hi - lo) if math.isfinite(value) else float("nan")


def _path(points: Sequence[tuple[float, float]]) -> str:
    """SVG path data; a nan y breaks the line."""
    out: list[str] = []
    pen_down = False
    for x, y in points:
        if not math.isfinite(y):
            pen_down = False
            continue
        out.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
        pen_down = True
    return "".join(out)


def timeline_svg(rows: Sequence[LogRow], span_s: float = 120.0,
                 threshold: float | None = None, min_span_s: float = 30.0) -> str:
    """``rows`` (oldest first) up to the newest, over at most the last ``span_s`` seconds;
    a younger session fills the width (at least ``min_span_s``)."""
    now_s = rows[-1].t_s if rows else 0.0
    first_s = rows[0].t_s if rows else now_s
    span_s = max(min_span_s, min(span_s, now_s - first_s))
    t0_s = now_s - span_s
    rows = [r for r in rows if r.t_s >= t0_s]
    parts = [
        f'<svg class="sx-timeline" viewBox="0 0 {W:.0f} {H:.0f}" '
        'preserveAspectRatio="none" role="img" aria-label="sentiment timeline">',
        '<defs><linearGradient id="sxg" gradientUnits="userSpaceOnUse" x1="0" x2="0" '
        f'y1="{TOP_Y0}" y2="{TOP_Y1}"><stop offset="0" stop-color="#22c55e"/>'
        '<stop offset="0.5" stop-color="#94a3b8"/><stop offset="1" stop-color="#ef4444"/>'
        "</linearGradient></defs>",
    ]
    for v in range(-3, 4):
        y = _y_sentiment(v)
        label = f"{v:+d}" if v else "0"
        parts.append(f'<line class="{"sx-axis0" if v == 0 else "sx-grid"}" x1="{LEFT}" '
                     f'x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/><text class="sx-tick" '
                     f'x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    for y in (BOT_Y0, BOT_Y1):
        parts.append(f'<line class="sx-grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y}" y2="{y}"/>')
    step = next((s for s in (5.0, 10.0, 30.0, 60.0, 120.0) if span_s / s <= 6), 300.0)
    k = 0.0
    while k <= span_s + 1e-9:
        x = _x(now_s - k, t0_s, span_s)
        label = "now" if k == 0 else f"\u2212{k:.0f} s"
        parts.append(f'<line class="sx-grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP_Y0}" '
                     f'y2="{BOT_Y1}"/><text class="sx-tick" x="{x:.1f}" y="{H - 4}" '
                     f'text-anchor="{"end" if k == 0 else "middle"}">{label}</text>')
        k += step
    parts.append(f'<text class="sx-panel" x="{LEFT + 4}" y="{TOP_Y0 - 8}">fused sentiment'
                 '<tspan class="sx-dash-key"> \u2014 1-min mean</tspan></text>')
    parts.append(f'<text class="sx-panel" x="{LEFT + 4}" y="{BOT_Y0 - 8}">signals '
                 + "".join(f'<tspan fill="{c}"> \u25cf {n}</tspan>'
                           for n, c in SIGNAL_COLOURS.items())
                 + '<tspan fill="#2dd4bf"> \u25ae face</tspan></text>')
    if threshold is not None and math.isfinite(threshold):
        y = _y_sentiment(threshold)
        parts.append(f'<line class="sx-threshold" x1="{LEFT}" x2="{W - RIGHT}" '
                     f'y1="{y:.1f}" y2="{y:.1f}"/>')
    if rows:
        xs = [_x(r.t_s, t0_s, span_s) for r in rows]
        parts.append(_face_band(rows, xs))
        line = _path([(x, _y_sentiment(r.sentiment)) for x, r in zip(xs, rows, strict=True)])
        y0 = _y_sentiment(0.0)
        parts.append(f'<path class="sx-area" d="{line}L{xs[-1]:.1f},{y0:.1f}'
                     f'L{xs[0]:.1f},{y0:.1f}Z"/>' if len(rows) > 1 else "")
        parts.append(f'<path class="sx-line" d="{line}"/>')
        mean = [(x, _y_sentiment(r.mean_1min) if math.isfinite(r.mean_1min) else math.nan)
                for x, r in zip(xs, rows, strict=True)]
        parts.append(f'<path class="sx-mean" d="{_path(mean)}"/>')
        series = {
            "energy": [_unit(r.energy_db, *ENERGY_DB_RANGE) for r in rows],
            "pitch": [_unit(r.pitch_hz, *PITCH_HZ_RANGE) for r in rows],
            "smile": [r.smile for r in rows],
        }
        for name, values in series.items():
            pts = [(x, _y_unit(v) if math.isfinite(v) else math.nan)
                   for x, v in zip(xs, values, strict=True)]
            parts.append(f'<path class="sx-sig" stroke="{SIGNAL_COLOURS[name]}" '
                         f'd="{_path(pts)}"/>')
        last = rows[-1]
        parts.append(f'<circle class="sx-now" cx="{xs[-1]:.1f}" '
                     f'cy="{_y_sentiment(last.sentiment):.1f}" r="4"/>')
    else:
        parts.append(f'<text class="sx-empty" x="{W / 2}" y="{(TOP_Y0 + TOP_Y1) / 2}" '
                     'text-anchor="middle">no predictions yet</text>')
    parts.append("</svg>")
    return f'<div class="sx-card sx-plot">{"".join(parts)}</div>'


def _face_band(rows: Sequence[LogRow], xs: Sequence[float]) -> str:
    """Rectangles under the signal panel where a face was present."""
    out: list[str] = []
    start = None
    for i, r in enumerate(rows):
        if r.face_present and start is None:
            start = xs[i]
        end_here = start is not None and (not r.face_present or i == len(rows) - 1)
        if end_here:
            end = xs[i]
            out.append(f'<rect class="sx-face-band" x="{start:.1f}" y="{BOT_Y1 + 1}" '
                       f'width="{max(end - start, 1.0):.1f}" height="5"/>')
            start = None
    return "".join(out)


def _bin_columns(values: np.ndarray, max_bins: int) -> np.ndarray:
    """(T, D) -> (T, min(D, max_bins)): means over contiguous groups of dimensions."""
    t, d = values.shape
    bins = max(1, min(d, max_bins))
    edges = np.linspace(0, d, bins + 1).astype(int)
    return np.stack([values[:, a:b].mean(axis=1) for a, b in zip(edges[:-1], edges[1:],
                                                                  strict=True)], axis=1)


def colourise(unit: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (nan -> 0) to RGB uint8 through the palette."""
    v = np.nan_to_num(np.clip(unit.astype(np.float32), 0.0, 1.0), nan=0.0)
    pos = v * (len(_PALETTE) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_PALETTE) - 2)
    frac = (pos - lo)[..., None]
    rgb = _PALETTE[lo] * (1.0 - frac) + _PALETTE[lo + 1] * frac
    return rgb.round().astype(np.uint8)


def mask_png(mask: np.ndarray, lo: float = 0.0, hi: float = 1.0, max_bins: int = 32) -> bytes:
    """One modality's (T, D) mask as a PNG, dimension groups as rows, steps as columns,
    coloured on the scale ``lo`` (dark) .. ``hi`` (bright)."""
    arr = np.asarray(mask, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"a mask must be (T, D) with T, D > 0, got shape {arr.shape}")
    if not hi > lo:
        raise ValueError(f"the colour scale needs lo < hi, got {lo}, {hi}")
    img = colourise((_bin_columns(arr, max_bins).T - lo) / (hi - lo))
    buf = io.BytesIO()
    Image.fromarray(img, mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def mask_scale(masks: Mapping[str, np.ndarray]) -> tuple[float, float]:
    """One colour scale for all modalities (so they compare): the masks' min and max, or
    0..1 when they are all equal or empty."""
    finite = [a[np.isfinite(a)] for a in (np.asarray(m, np.float32) for m in masks.values())]
    finite = [a for a in finite if a.size]
    if not finite:
        return 0.0, 1.0
    lo = float(min(a.min() for a in finite))
    hi = float(max(a.max() for a in finite))
    return (lo, hi) if hi - lo > 1e-6 else (0.0, 1.0)


def masks_html(masks: Mapping[str, np.ndarray] | None, t_end_s: float | None = None) -> str:
    head = '<div class="sx-card sx-masks"><div class="sx-title">MMLatch top-down masks '
    head += ('<span class="sx-muted">latest window'
             + (f", t = {t_end_s:.1f} s" if t_end_s is not None else "") + "</span></div>")
    if not masks:
        return head + ('<div class="sx-muted">the running model exposes no masks '
                       "(or no window yet)</div></div>")
    lo, hi = mask_scale(masks)
    names = [m for m in MASK_ORDER if m in masks] + [m for m in masks if m not in MASK_ORDER]
    rows = []
    for name in names:
        arr = np.asarray(masks[name], dtype=np.float32)
        if arr.ndim != 2 or arr.size == 0:
            rows.append(f'<div class="sx-mask-row"><span class="sx-mask-name">{escape(name)}'
                        '</span><span class="sx-muted">empty</span></div>')
            continue
        data = base64.b64encode(mask_png(arr, lo, hi)).decode("ascii")
        rows.append(
            f'<div class="sx-mask-row" data-modality="{escape(name)}">'
            f'<span class="sx-mask-name">{escape(name)}<small>{arr.shape[0]} steps \u00d7 '
            f'{arr.shape[1]} \u00b7 mean {float(np.nanmean(arr)):.2f}</small></span>'
            f'<img class="sx-mask-img" alt="{escape(name)} mask" '
            f'src="data:image/png;base64,{data}"/></div>')
    scale = (f'<div class="sx-mask-scale"><span>{lo:.2f}</span><span class="sx-mask-bar">'
             f"</span><span>{hi:.2f}</span><span class=\"sx-muted\">gate value \u00b7 steps "
             "\u2192, feature groups \u2193</span></div>")
    return head + "".join(rows) + scale + "</div>"
