"""HTML for the dashboard's panels: pure functions of predictions and status, no Gradio.

Every function returns a small HTML fragment styled by `realtime.dashboard.style.CSS` and escapes
everything that came from outside (recognised words, model and source names, error text).
Numbers keep their units in labels; a value that is unknown (nan, or no prediction yet) is
shown as an em dash, never as a made-up number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

import numpy as np

from realtime.types import Prediction, Signals

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
) -> str:
    """Rolling 1- and 5-minute means, the share of time negative, and the alert banner."""

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
        f"</div>{banner}</div>"
    )
