"""From the dashboard's state to each panel's HTML, and the session log export.

`fast_panels` (sentiment, transcript, signals, latency, status, session aggregates) is cheap
enough for every tick (5.6 Hz); `slow_panels` (timeline, masks) every 0.5 s.
`RefreshMeter` measures how often a page is actually refreshed (ticks served per second).
`SharedPanels` computes them once for every page that shows the same dashboard.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from realtime.clock import perf_s, wall_time_iso
from realtime.dashboard.controller import Dashboard
from realtime.dashboard.html import (
    affect_aggregates_html,
    aggregates_html,
    expression_html,
    latency_html,
    latency_percentiles,
    masks_html,
    sentiment_html,
    signals_html,
    status_html,
    timeline_svg,
    transcript_html,
)
from realtime.types import Prediction, Signals

VOICE_FIELDS = ("pitch_hz", "energy_db")
FACE_FIELDS = ("smile", "brow", "jaw")
FAST_PANELS = ("sentiment", "transcript", "signals", "latency", "status", "aggregates",
               "expression")
SLOW_PANELS = ("timeline", "masks")
log = logging.getLogger(__name__)
T = TypeVar("T")


class RefreshMeter:
    """Ticks per second over the last ``window_s`` seconds (durations via `perf_s`)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self.count = 0
        self._times: deque[float] = deque()

    def tick(self, now_s: float | None = None) -> float:
        now_s = perf_s() if now_s is None else now_s
        self.count += 1
        self._times.append(now_s)
        while self._times and self._times[0] < now_s - self.window_s:
            self._times.popleft()
        return self.rate_hz

    @property
    def rate_hz(self) -> float:
        if len(self._times) < 2 or self._times[-1] <= self._times[0]:
            return float("nan")
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])


@dataclass(frozen=True)
class ViewSettings:
    """The user's monitoring settings: alert threshold (sentiment units), how long the
    rolling mean must stay below it (s), the timeline's span (s), the latency window (s)."""

    threshold: float = -1.0
    hold_s: float = 10.0
    span_s: float = 120.0
    latency_window_s: float = 30.0
    valence_threshold: float = -0.3
    """Face valence alert: its 1-minute mean below this (in [-1, 1]); NaN: off."""
    arousal_threshold: float = 1.0
    """Voice arousal alert: its 1-minute mean above this (z units); NaN: off."""


class SharedPanels:
    """Panels computed once and shared by every page that shows the same dashboard with the
    same settings (most viewers watch the presenter view), instead of once per page per
    tick. An entry is reused while the dashboard's moment (`moment`: its store, the store's
    version, the log's) is the same; the per-page parts (the refresh meter's count and
    rate, the pipeline's status) are added per page. Bounded: the ``max_entries`` (kind,
    dashboard, settings) most recently used; a dashboard is held only weakly."""

    def __init__(self, max_entries: int = 32) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, tuple[tuple, object]] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0  # entries computed
        self.reused = 0  # answers served from an entry

    @staticmethod
    def moment(dashboard: Dashboard) -> tuple:
        """What the shared panels depend on besides the settings: changes with every new
        prediction, log row, log reset and source switch."""
        store, log = dashboard.pipeline.store, dashboard.log
        return (id(store), store.version, log.version, len(log), log.last_t_s,
                dashboard.session_active)

    def get(self, kind: str, dashboard: Dashboard, settings: ViewSettings,
            compute: Callable[[], T]) -> T:
        key = (kind, weakref.ref(dashboard), settings)
        moment = self.moment(dashboard)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] == moment:
                self._entries.move_to_end(key)
                self.reused += 1
                return hit[1]
        value = compute()
        with self._lock:
            self._entries[key] = (moment, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            self.computed += 1
        return value

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class _FastShared:
    """The part of the fast panels that every page of one dashboard shares."""

    panels: dict[str, str]
    percentiles: dict[str, tuple[float, float]]


def fast_panels(dashboard: Dashboard, settings: ViewSettings, meter: RefreshMeter,
                shared: SharedPanels | None = None) -> dict[str, str]:
    """The fast panels of ``dashboard`` for one page (``meter``: that page's refresh); with
    ``shared``, the parts every page shows alike are computed once per moment."""
    dashboard.sync(blocking=False)
    if shared is None:
        common = _fast_shared(dashboard, settings)
    else:
        common = shared.get("fast", dashboard, settings,
                            lambda: _fast_shared(dashboard, settings))
    latest = dashboard.latest()
    st = dashboard.status()
    ps = st.pipeline
    drops = {**ps.drops, **dashboard.ui_drops}
    if latest is not None:
        for queue, n in latest.drops.items():
            drops[queue] = max(int(n), drops.get(queue, 0))
    source = ps.source_name
    if st.browser_frames or st.browser_audio_chunks:
        source += f" \u00b7 {st.browser_frames} frames, {st.browser_audio_chunks} audio chunks"
    return {
        **common.panels,
        "latency": latency_html(common.percentiles, drops, ps.updates_per_s, meter.rate_hz,
                                settings.latency_window_s),
        "status": status_html(ps.model_name, ps.device, ps.triton, source, ps.running,
                              st.error, meter.count, dashboard.media_time_s(latest)),
    }


def _fast_shared(dashboard: Dashboard, settings: ViewSettings) -> _FastShared:
    latest = dashboard.latest()
    log = dashboard.log
    recent = log.rows(since_s=log.last_t_s - settings.latency_window_s)
    pct = latency_percentiles([r.latency_ms for r in recent])
    if not pct and latest is not None:
        pct = latency_percentiles([latest.latency_ms])
    agg = log.aggregates()
    alert = log.alert(settings.threshold, settings.hold_s)
    affect_alerts = []
    for name, field, above, limit, what in (
            ("valence", "valence_1min", False, settings.valence_threshold, "face valence"),
            ("arousal", "arousal_1min", True, settings.arousal_threshold, "voice arousal")):
        if math.isfinite(limit):
            state = log.alert(limit, settings.hold_s, field, above)
            affect_alerts.append((name, state.active, (
                f"1-minute {what} {'above' if above else 'below'} {limit:+.1f} for "
                f"{state.below_for_s:.0f} s / {settings.hold_s:.0f} s")))
    return _FastShared(percentiles=pct, panels={
        "sentiment": sentiment_html(latest),
        "transcript": transcript_html(*_transcript(dashboard, latest)),
        "signals": signals_html(None if latest is None else held_signals(dashboard, latest)),
        "aggregates": aggregates_html(agg.rows, agg.duration_s, agg.mean_1min, agg.mean_5min,
                                      agg.negative_share, alert.active, settings.threshold,
                                      settings.hold_s, alert.below_for_s,
                                      dashboard.session_active,
                                      affect_aggregates_html(agg.valence_1min,
                                                             agg.arousal_1min,
                                                             agg.stress_share, affect_alerts)),
        "expression": expression_html(
            None, math.nan, math.nan, 0.0, math.nan, True) if latest is None else
        expression_html(latest.expression, latest.model_sentiment, latest.face_valence,
                        latest.face_weight, latest.voice_arousal, latest.arousal_warming_up),
    })


def held_signals(dashboard: Dashboard, latest: Prediction, hold_s: float = 1.0) -> Signals:
    """The latest signals, a missing voice value (or face value, while a face is present)
    taken from the newest logged row of the last ``hold_s`` seconds that has one, so a
    momentary gap does not blink; a longer silence or no face still shows as missing."""
    s = latest.signals
    names = VOICE_FIELDS + (FACE_FIELDS if s.face_present else ())
    missing = [n for n in names if not math.isfinite(getattr(s, n))]
    if not missing or not dashboard.session_active:
        return s
    rows = dashboard.log.rows(since_s=dashboard.log.last_t_s - hold_s)
    held = {}
    for name in missing:
        value = next((getattr(r, name) for r in reversed(rows)
                      if math.isfinite(getattr(r, name))), None)
        if value is not None:
            held[name] = value
    return replace(s, **held)


def _transcript(dashboard: Dashboard, latest) -> tuple[list[str], list[str]]:
    """The session's committed words (from the log; the model window's words when no
    session logs them) and the latest tentative words."""
    if latest is None:
        return [], []
    committed = dashboard.log.transcript() if dashboard.session_active else []
    return committed or list(latest.words), list(latest.tentative)


def slow_panels(dashboard: Dashboard, settings: ViewSettings,
                shared: SharedPanels | None = None) -> dict[str, str]:
    """The timeline and the masks; with ``shared``, computed once per moment for all pages."""
    if shared is not None:
        return shared.get("slow", dashboard, settings,
                          lambda: slow_panels(dashboard, settings))
    log = dashboard.log
    rows = log.rows(since_s=log.last_t_s - settings.span_s - 1.0)
    latest = dashboard.latest()
    return {
        "timeline": timeline_svg(rows, settings.span_s, settings.threshold),
        "masks": masks_html(None if latest is None else latest.masks,
                            None if latest is None else latest.t_end_s),
    }


def export_log(dashboard: Dashboard, fmt: str, folder: Path) -> Path:
    """Writes the session log as ``csv`` or ``jsonl`` into ``folder``; returns the file."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"export format must be csv or jsonl, got {fmt!r}")
    dashboard.sync()
    text = dashboard.log.to_csv() if fmt == "csv" else dashboard.log.to_jsonl()
    stamp = (dashboard.log.started_wall or wall_time_iso()).replace(":", "-")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"sentiment-session-{stamp}.{fmt}"
    path.write_text(text, encoding="utf-8")
    log.info("exported the session log (%d rows) to %s", len(dashboard.log), path)
    return path
