"""HTML for the dashboard's panels: pure functions of predictions, log rows and status, no
Gradio and no plotting library, so a refresh stays cheap.

Every function returns a small HTML fragment styled by `realtime.dashboard.style.CSS` and escapes
everything that came from outside (recognised words, model and source names, error text).
Numbers keep their units in labels; a value that is unknown (nan, or no prediction yet) is
shown as an em dash, never as a made-up number.

The two pictures: `timeline_svg`, an inline SVG of the last minutes of a session: the fused
sentiment (a line coloured red -> grey -> green by value, its 1-minute rolling mean dashed, the
alert threshold) above the per-modality signals scaled to [0, 1] (voice energy and pitch,
smile, and a band where a face was present); `masks_html`, MMLatch's top-down masks of the
latest window as one heatmap per modality (time steps left to right, feature dimensions
averaged into at most ``max_bins`` rows, one colour scale for the three: their min..max,
printed), PNG in a data URI.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from models.expression import EXPRESSIONS
from realtime.dashboard.session_log import LogRow
from realtime.extract.arousal import LABEL as AROUSAL_LABEL
from realtime.types import Prediction, Signals

if TYPE_CHECKING:
    from realtime.serving.sessions import SessionHealth

SENTIMENT_MIN = -3.0
SENTIMENT_MAX = 3.0
DASH = "\u2014"

# red (-3) -> grey (0) -> green (+3)
_NEGATIVE_RGB = (239, 68, 68)
_NEUTRAL_RGB = (148, 163, 184)
_POSITIVE_RGB = (34, 197, 94)


def sentiment_rgb(value: float) -> tuple[int, int, int]:
    """Colour of a sentiment in [-3, 3]: red through grey (0) to green; clipped outside."""
    if not math.isfinite(value):
        return _NEUTRAL_RGB
    x = max(-1.0, min(1.0, value / SENTIMENT_MAX))
    end = _POSITIVE_RGB if x >= 0 else _NEGATIVE_RGB
    a = abs(x)
    return tuple(round(n + (e - n) * a) for n, e in zip(_NEUTRAL_RGB, end, strict=True))


def sentiment_css(value: float) -> str:
    r, g, b = sentiment_rgb(value)
    return f"rgb({r},{g},{b})"


def sentiment_text(value: float) -> str:
    """Signed, two decimals: ``+1.23``, ``-0.40``, ``+0.00``."""
    if not math.isfinite(value):
        return DASH
    return f"{value:+.2f}".replace("-0.00", "+0.00")


def sentiment_label(value: float) -> str:
    if not math.isfinite(value):
        return ""
    if value <= -2.0:
        return "strongly negative"
    if value <= -0.5:
        return "negative"
    if value < 0.5:
        return "neutral"
    if value < 2.0:
        return "positive"
    return "strongly positive"


def sentiment_html(prediction: Prediction | None) -> str:
    """The big number with sign and two decimals, a label and a -3..+3 gauge."""
    if prediction is None:
        return (
            '<div class="sx-card sx-sentiment" data-value="">'
            '<div class="sx-title">Sentiment</div>'
            f'<div class="sx-big sx-muted">{DASH}</div>'
            '<div class="sx-word sx-muted">waiting for the first prediction\u2026</div>'
            f"{_gauge(float('nan'))}</div>"
        )
    value = float(prediction.sentiment)
    text = sentiment_text(value)
    return (
        f'<div class="sx-card sx-sentiment" data-value="{text}">'
        '<div class="sx-title">Sentiment</div>'
        f'<div class="sx-big" style="color:{sentiment_css(value)}">{text}</div>'
        f'<div class="sx-word">{sentiment_label(value)}'
        f'<span class="sx-muted"> \u00b7 t = {prediction.t_end_s:.1f} s</span></div>'
        f"{_gauge(value)}</div>"
    )


def _gauge(value: float) -> str:
    known = math.isfinite(value)
    v = max(SENTIMENT_MIN, min(SENTIMENT_MAX, value)) if known else 0.0
    pos = (v - SENTIMENT_MIN) / (SENTIMENT_MAX - SENTIMENT_MIN) * 100.0
    left, width = (50.0, pos - 50.0) if pos >= 50.0 else (pos, 50.0 - pos)
    fill = (
        f'<div class="sx-gauge-fill" style="left:{left:.1f}%;width:{width:.1f}%;'
        f'background:{sentiment_css(v)}"></div>'
        f'<div class="sx-gauge-marker" style="left:{pos:.1f}%"></div>'
        if known
        else ""
    )
    ticks = "".join(f"<span>{t:+d}</span>" if t else "<span>0</span>" for t in range(-3, 4))
    return (
        f'<div class="sx-gauge"><div class="sx-gauge-zero"></div>{fill}</div>'
        f'<div class="sx-scale">{ticks}</div>'
    )


def transcript_html(committed: Sequence[str], tentative: Sequence[str],
                    max_words: int = 60, max_tentative: int = 12) -> str:
    """The newest ``max_words`` committed words in full colour, then at most
    ``max_tentative`` tentative words (the hypothesis for the last second or two of speech)
    dimmed and italic."""
    if not committed and not tentative:
        body = '<span class="sx-muted">listening\u2026</span>'
    else:
        words = list(committed)[-max_words:]
        parts = [f'<span class="sx-committed">{escape(w)}</span>' for w in words]
        parts += [f'<span class="sx-tentative">{escape(w)}</span>'
                  for w in list(tentative)[:max_tentative]]
        body = " ".join(parts)
    return (
        '<div class="sx-card sx-transcript"><div class="sx-title">Transcript '
        '<span class="sx-legend"><span class="sx-committed">committed</span> \u00b7 '
        '<span class="sx-tentative">tentative</span></span></div>'
        f'<div class="sx-words">{body}</div></div>'
    )


def _fmt(value: float, pattern: str) -> str:
    return pattern.format(value) if value is not None and math.isfinite(value) else DASH


def _bar(name: str, value: float) -> str:
    known = value is not None and math.isfinite(value)
    pct = max(0.0, min(1.0, value)) * 100.0 if known else 0.0
    return (
        f'<div class="sx-meter"><span class="sx-meter-name">{name}</span>'
        f'<span class="sx-meter-track"><span class="sx-meter-fill" style="width:{pct:.0f}%">'
        f'</span></span><span class="sx-meter-value">{_fmt(value, "{:.2f}")}</span></div>'
    )


def signals_html(signals: Signals | None) -> str:
    """Voice (pitch, energy) and face (smile, brow, jaw, face present) of the latest hop."""
    if signals is None:
        return (
            '<div class="sx-card sx-signals"><div class="sx-title">Signals</div>'
            '<div class="sx-muted">no signals yet</div></div>'
        )
    s = signals
    face_cls, face_txt = ("sx-on", "face present") if s.face_present else ("sx-off", "no face")
    return (
        '<div class="sx-card sx-signals"><div class="sx-title">Signals</div>'
        '<div class="sx-grid2">'
        '<div><div class="sx-sub">Voice</div>'
        f'<div class="sx-kv"><span>pitch</span><b data-signal="pitch_hz">'
        f'{_fmt(s.pitch_hz, "{:.0f}")}</b><span class="sx-unit">Hz</span></div>'
        f'<div class="sx-kv"><span>energy</span><b data-signal="energy_db">'
        f'{_fmt(s.energy_db, "{:.1f}")}</b><span class="sx-unit">dB</span></div></div>'
        '<div><div class="sx-sub">Face '
        f'<span class="sx-face {face_cls}" data-face-present="{str(bool(s.face_present)).lower()}">'
        f"{face_txt}</span></div>"
        f"{_bar('smile', s.smile)}{_bar('brow', s.brow)}{_bar('jaw', s.jaw)}</div>"
        "</div></div>"
    )


def expression_html(expression: Sequence[float] | None, model_sentiment: float,
                    face_valence: float, face_weight: float, voice_arousal: float,
                    arousal_warming_up: bool) -> str:
    """The facial expression (7 bars, already smoothed over ~0.5 s by the pipeline, and the
    dominant class), the contributions side by side (the words-and-voice model's sentiment;
    the face valence and its weight), and the voice arousal heuristic."""
    if expression is None:
        bars, dominant = '<div class="sx-muted">no face</div>', "none"
    else:
        bars = "".join(_bar(n, p) for n, p in zip(EXPRESSIONS, expression, strict=True))
        dominant = EXPRESSIONS[int(np.argmax(expression))]
    arousal = ("warming up (learning this speaker's baseline)" if arousal_warming_up
               else _fmt(voice_arousal, "{:+.2f}"))
    return (
        '<div class="sx-card sx-expression"><div class="sx-title">Expression '
        f'<b data-expression-dominant="{dominant}">{dominant}</b></div>{bars}'
        '<div class="sx-sub">Contributions</div>'
        f'<div class="sx-kv"><span>words + voice model</span><b data-model-sentiment>'
        f'{_fmt(model_sentiment, "{:+.2f}")}</b></div>'
        f'<div class="sx-kv"><span>face valence</span><b data-face-valence>'
        f'{_fmt(face_valence, "{:+.2f}")}</b><span class="sx-unit">'
        f"× weight {face_weight:g}</span></div>"
        f'<div class="sx-kv"><span>{AROUSAL_LABEL}</span><b data-voice-arousal>'
        f"{arousal}</b></div></div>"
    )


STAGE_ORDER = ("total", "window_to_prediction", "features_to_window", "capture_to_features",
               "audio_total", "video_total")


def stage_label(stage: str) -> str:
    """``audio_capture_to_features`` -> ``audio capture → features``."""
    return stage.replace("_to_", " → ").replace("_", " ")


def latency_percentiles(
    latencies: Sequence[Mapping[str, float]],
) -> dict[str, tuple[float, float]]:
    """Per stage: (p50, p95) in ms over the given predictions' ``latency_ms``; the stages of
    `STAGE_ORDER` first, others in first-seen order; non-finite values are ignored."""
    values: dict[str, list[float]] = {stage: [] for stage in STAGE_ORDER}
    for row in latencies:
        for stage, ms in row.items():
            if ms is not None and math.isfinite(ms):
                values.setdefault(stage, []).append(float(ms))
    return {
        stage: (float(np.percentile(v, 50)), float(np.percentile(v, 95)))
        for stage, v in values.items()
        if v
    }


def latency_html(
    percentiles: Mapping[str, tuple[float, float]],
    drops: Mapping[str, int],
    updates_per_s: float,
    ui_refresh_hz: float,
    window_s: float,
) -> str:
    """Per-stage p50/p95 (ms) of the `STAGE_ORDER` stages (the per-modality breakdown of
    capture/features is in the exported log), drops per queue, the model update rate and
    the page's refresh rate."""
    shown = {k: v for k, v in percentiles.items() if k in STAGE_ORDER} or dict(percentiles)
    if shown:
        rows = "".join(
            f'<tr class="{"sx-total" if stage == "total" else ""}"><td>'
            f'{escape(stage_label(stage))}</td><td class="sx-num">{p50:.0f}</td>'
            f'<td class="sx-num">{p95:.0f}</td></tr>'
            for stage, (p50, p95) in shown.items()
        )
        table = (
            '<table class="sx-table"><thead><tr><th>stage</th><th>p50 ms</th><th>p95 ms</th>'
            f"</tr></thead><tbody>{rows}</tbody></table>"
        )
    else:
        table = '<div class="sx-muted">no latencies yet</div>'
    total_drops = sum(int(n) for n in drops.values())
    drop_txt = ", ".join(f"{escape(k)} {int(n)}" for k, n in drops.items() if n) or "none"
    return (
        '<div class="sx-card sx-latency"><div class="sx-title">Latency '
        f'<span class="sx-muted">last {window_s:.0f} s</span></div>{table}'
        '<div class="sx-kv"><span>model updates</span>'
        f'<b data-rate="updates">{_fmt(updates_per_s, "{:.1f}")}</b>'
        '<span class="sx-unit">/s</span></div>'
        '<div class="sx-kv"><span>UI refresh</span>'
        f'<b data-rate="ui">{_fmt(ui_refresh_hz, "{:.1f}")}</b><span class="sx-unit">Hz</span>'
        "</div>"
        f'<div class="sx-kv"><span>drops</span><b data-drops="{total_drops}">{total_drops}</b>'
        f'<span class="sx-unit">{drop_txt}</span></div></div>'
    )


def status_html(
    model_name: str,
    device: str,
    triton: bool,
    source_name: str,
    running: bool,
    error: str | None,
    tick: int,
    media_t_s: float | None,
) -> str:
    """Model, CPU or GPU, Triton on or off, the source and whether it runs.

    ``tick`` (a per-page refresh counter) and ``media_t_s`` (the recording's current
    position, for the player) are data attributes for the page's script and for tests.
    """
    dev = "GPU" if device.lower().startswith("cuda") else "CPU"
    if error:
        state = f'<span class="sx-pill sx-bad" title="{escape(error)}">error</span>'
    elif running:
        state = '<span class="sx-pill sx-good"><span class="sx-dot"></span>live</span>'
    else:
        state = '<span class="sx-pill">stopped</span>'
    media = "" if media_t_s is None or not math.isfinite(media_t_s) else f"{media_t_s:.2f}"
    err = f'<div class="sx-error">{escape(error)}</div>' if error else ""
    return (
        f'<div class="sx-status" data-tick="{int(tick)}" data-media-t="{media}" '
        f'data-running="{str(bool(running)).lower()}">{state}'
        f'<span class="sx-chip"><i>model</i> {escape(model_name or DASH)}</span>'
        f'<span class="sx-chip"><i>device</i> {dev}</span>'
        f'<span class="sx-chip"><i>Triton</i> {"on" if triton else "off"}</span>'
        f'<span class="sx-chip"><i>source</i> {escape(source_name or DASH)}</span>{err}</div>'
    )


def aggregates_html(
    rows: int,
    duration_s: float,
    mean_1min: float,
    mean_5min: float,
    negative_share: float,
    alert_active: bool,
    threshold: float,
    hold_s: float,
    below_for_s: float,
    session_active: bool,
    extra: str = "",
) -> str:
    """Rolling 1- and 5-minute means, the share of time negative, and the alert banner;
    ``extra``: the face/voice part (`affect_aggregates_html`)."""

    def mean_cell(value: float, label: str) -> str:
        colour = sentiment_css(value) if math.isfinite(value) else "inherit"
        return (f'<div><b style="color:{colour}">{sentiment_text(value)}</b>'
                f"<span>{label}</span></div>")

    share = DASH if not math.isfinite(negative_share) else f"{negative_share * 100:.0f}%"
    state = "recording" if session_active else "stopped"
    if alert_active:
        banner = (f'<div class="sx-alert" data-alert="on">\u26a0 1-minute mean '
                  f"{sentiment_text(mean_1min)} has stayed below {threshold:+.1f} "
                  f"for {below_for_s:.0f} s</div>")
    else:
        banner = (f'<div class="sx-calm" data-alert="off">alert when the 1-minute mean stays '
                  f"below {threshold:+.1f} for {hold_s:.0f} s</div>")
    return (
        f'<div class="sx-card sx-aggregates"><div class="sx-title">Session '
        f'<span class="sx-muted">{state} \u00b7 {duration_s / 60:.1f} min \u00b7 '
        f"{rows} updates</span></div>"
        f'<div class="sx-agg">{mean_cell(mean_1min, "1-min mean")}'
        f'{mean_cell(mean_5min, "5-min mean")}'
        f'<div><b data-negative-share="{share}">{share}</b><span>time negative</span></div>'
        f"</div>{banner}{extra}</div>"
    )


def affect_aggregates_html(valence_1min: float, arousal_1min: float, stress_share: float,
                           alerts: Sequence[tuple[str, bool, str]]) -> str:
    """Face valence and voice arousal 1-minute means, the stress share (high arousal and
    negative sentiment), and one banner per (name, active, rule) alert."""
    share = DASH if not math.isfinite(stress_share) else f"{stress_share * 100:.0f}%"
    banners = "".join(
        f'<div class="{"sx-alert" if on else "sx-calm"}" data-alert-{name}='
        f'"{"on" if on else "off"}">{"⚠ " if on else ""}{rule}</div>'
        for name, on, rule in alerts)
    return (
        f'<div class="sx-agg"><div><b>{_fmt(valence_1min, "{:+.2f}")}</b>'
        '<span>face valence, 1-min</span></div>'
        f'<div><b>{_fmt(arousal_1min, "{:+.2f}")}</b><span>{AROUSAL_LABEL}, 1-min</span></div>'
        f'<div><b data-stress-share="{share}">{share}</b><span>time stressed (high arousal, '
        "negative sentiment)</span></div></div>" + banners
    )


# -- the pictures: timeline and masks ----------------------------------------------------------
W, H = 900.0, 300.0
LEFT, RIGHT = 44.0, 10.0
TOP_Y0, TOP_Y1 = 22.0, 176.0  # sentiment panel (y of +3, y of -3)
BOT_Y0, BOT_Y1 = 206.0, 282.0  # signal panel (y of 1, y of 0)
ENERGY_DB_RANGE = (-60.0, 0.0)
PITCH_HZ_RANGE = (75.0, 300.0)
SIGNAL_COLOURS = {"energy": "#38bdf8", "pitch": "#a78bfa", "smile": "#f59e0b",
                  "face valence": "#f472b6", "voice arousal": "#facc15"}
AROUSAL_RANGE = (-3.0, 3.0)
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
            "face valence": [_unit(r.face_valence, -1.0, 1.0) for r in rows],
            "voice arousal": [_unit(r.voice_arousal, *AROUSAL_RANGE) for r in rows],
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


def health_table(rows: Sequence[SessionHealth]) -> str:
    """The operator page: one row per session with its health only (id, source kind,
    state (running, degraded and what it cut, or stopped), running time, updates/s, latency
    p95, drops, error); never a sentiment, word or signal of anyone."""
    if not rows:
        return '<div class="sx-card sx-muted" data-sessions="0">No sessions.</div>'
    head = ("<tr><th>session</th><th>source</th><th>state</th><th>running</th>"
            "<th>updates/s</th><th>latency p95 (ms)</th><th>drops</th><th>error</th></tr>")
    body = []
    for h in rows:
        p95 = "\u2013" if h.latency_p95_ms is None else f"{h.latency_p95_ms:.0f}"
        body.append(
            f'<tr data-session="{escape(h.id)}"><td>{escape(h.id)}</td>'
            f"<td>{escape(h.source_kind)}</td>"
            f"<td>{_state(h)}</td>"
            f'<td class="sx-num">{h.running_s:.0f} s</td>'
            f'<td class="sx-num">{h.updates_per_s:.1f}</td><td class="sx-num">{p95}</td>'
            f'<td class="sx-num">{h.drops}</td><td>{escape(h.error or "")}</td></tr>')
    return (f'<div class="sx-card" data-sessions="{len(rows)}"><table class="sx-table">'
            f"{head}{''.join(body)}</table></div>")


def _state(h: SessionHealth) -> str:
    if not h.running:
        return "stopped"
    return f"degraded: {escape(h.degraded)}" if h.degraded else "running"
