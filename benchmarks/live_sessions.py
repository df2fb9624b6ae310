"""Full live sessions on one engine, for the many-streams benchmarks: K copies of a recording
replayed at real speed through `realtime.serving.sessions.SessionManager` (ASR, face,
acoustic, the expression network and the sentiment model; Whisper, the expression network
and the per-tick models batched across sessions by `realtime.serving.executor.SharedModels`;
the face tracker and the expression network at the stages' rates), and what each session
got: updates per second against the hop rate, latency, drops, per-stage compute, the bytes
of media its source delivered per media second.

`run_live` is ``python -m benchmarks.streams --live K``, on the sessions registry of a
`realtime.runtime.Runtime` (`live_runtime_config`); `open_session` and `session_figures` are
shared with `benchmarks.sessions_churn`.

A session "keeps up" (`keeps_up`) when it published at least ``KEEP_UP_FRACTION`` of the
hop rate (5 Hz at the 0.2 s hop: the demo's video changes the window every frame, so a
session that keeps up publishes every tick), its capture -> prediction p95 (``total``) is
within ``LIVE_P95_MS`` (the pipeline's 250 ms target) and it lost nothing but superseded
video frames (``video_skipped``: the face stage takes the newest frame by design).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.memory import RssSampler
from benchmarks.pipeline import compute_fractions
from realtime.clock import perf_s
from realtime.stats import process_cpu_s

log = logging.getLogger(__name__)

KEEP_UP_FRACTION = 0.9
LIVE_P95_MS = 250.0
DESIGNED_DROPS = ("video_skipped",)  # superseded frames: not lost work
AUDIO_LOST = "asr_audio_lost_ms"  # milliseconds, not items: kept out of the item totals


@dataclass
class UpdateCounter:
    """A session's ``on_prediction``: how many predictions, first and last emission (session
    seconds)."""

    n: int = 0
    first_s: float = float("nan")
    last_s: float = float("nan")
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, prediction) -> None:
        with self._lock:
            if self.n == 0:
                self.first_s = prediction.emitted_at_s
            self.last_s = prediction.emitted_at_s
            self.n += 1

    def rate_hz(self) -> float:
        """Predictions per second between the first and the last (0 with fewer than 2)."""
        with self._lock:
            span_s = self.last_s - self.first_s
            return (self.n - 1) / span_s if self.n >= 2 and span_s > 0 else 0.0


def open_session(manager, path: Path, repeat_until_s: float | None = None,
                 paced: bool = True) -> tuple[str, UpdateCounter]:
    """A session on ``path`` (paced like a live device unless ``paced`` is False), looped until
    ``repeat_until_s``; returns its id and its update counter. Raises what
    `SessionManager.create` raises."""
    from realtime.sources import SourceSpec, make_source

    counter = UpdateCounter()
    source = make_source(SourceSpec.file(path, paced=paced, repeat_until_s=repeat_until_s))
    return manager.create(source, on_prediction=counter), counter


def _pct(x: np.ndarray) -> dict[str, float] | None:
    if len(x) == 0:
        return None
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    return {"n": int(len(x)), "p50": round(float(p50), 1), "p95": round(float(p95), 1),
            "p99": round(float(p99), 1)}


def media_s(pipeline) -> float:
    """Seconds of input a session has captured (its newest input's time from its start)."""
    last_s = pipeline.last_input_s
    return max(0.0, last_s - pipeline.source.started_at_s) if last_s == last_s else 0.0


def session_figures(pipeline, counter: UpdateCounter, hop_s: float) -> dict:
    """One session: updates/s, latency (``total``, ms), drops per kind, each stage's wall
    compute per media second, the bytes of media its source delivered per media second
    (`realtime.sources.Source.delivered_bytes`: 16 kHz float32 audio and RGB frames, as the
    stages got them), error, whether it kept up (see the module doc) and what it had cut under
    load when it ended (`realtime.pipeline.Pipeline.degraded`)."""
    covered_s = media_s(pipeline)
    drops = pipeline.drops
    lost_items = sum(v for k, v in drops.items() if k not in (*DESIGNED_DROPS, AUDIO_LOST))
    latency = _pct(pipeline.stats.series("latency_ms.total"))
    rate = counter.rate_hz()
    keeps_up = (rate >= KEEP_UP_FRACTION / hop_s and latency is not None
                and latency["p95"] <= LIVE_P95_MS and lost_items == 0
                and drops.get(AUDIO_LOST, 0) == 0 and pipeline.error is None)
    return {
        "media_s": round(covered_s, 1), "predictions": counter.n,
        "updates_per_s": round(rate, 2), "latency_ms": latency, "drops": drops,
        "lost_items": lost_items,
        "stage_wall_s_per_media_s": compute_fractions(pipeline.stats, max(covered_s, 1e-6)),
        "bytes_per_media_s": round(pipeline.source.delivered_bytes / max(covered_s, 1e-6)),
        "error": pipeline.error, "keeps_up": bool(keeps_up),
        "degraded_at_end": pipeline.degraded,
    }


def _sum_drops(sessions: list[dict]) -> dict[str, int]:
    total: dict[str, int] = {}
    for s in sessions:
        for kind, n in s["drops"].items():
            total[kind] = total.get(kind, 0) + int(n)
    return total


@dataclass(frozen=True)
class LiveConfig:
    """path: the recording; seconds: each session's real-speed replay (looped); hop_s: the
    tick; rss_every_s: RSS sampling for the peak."""

    path: Path
    seconds: float
    hop_s: float = 0.2
    rss_every_s: float = 1.0


def live_runtime_config(counts: list[int], config: LiveConfig, checkpoint_dir: Path | None = None,
                        device: str = "cpu", batch=None):
    """The `realtime.runtime.RuntimeConfig` `run_live` needs for every K of ``counts``: the
    per-tick models batched across sessions (``batch``: a `BatchConfig`, default the
    executor's), a registry of ``max(counts)`` sessions on ``config``'s hop that reaps none."""
    from realtime.runtime import RuntimeConfig

    return RuntimeConfig(checkpoint_dir=checkpoint_dir, device=device, shared_models=True,
                         batch=batch, max_sessions=max(counts), hop_s=config.hop_s,
                         idle_timeout_s=max(60.0, config.seconds))


def run_live(runtime, k: int, config: LiveConfig) -> dict:
    """K sessions of ``config.path`` at real speed for ``config.seconds`` in ``runtime`` (a
    `realtime.runtime.Runtime` opened with `live_runtime_config`: its registry and shared
    executor), stopped again at the end. Returns the figures (JSON-ready); the executor's are
    this run's, but for ``max_batch``: the largest batch since the runtime opened."""
    manager, shared = runtime.sessions, runtime.shared
    if shared is None or manager.hop_s != config.hop_s:
        raise ValueError("run_live needs a runtime opened with live_runtime_config")
    rss = RssSampler(config.rss_every_s)
    before = {"model": shared.model.stats(), "words": shared.words.stats()}
    if shared.classifier is not None:
        before["expression"] = shared.classifier.executor.stats()
    rss.start()
    sessions = []
    try:
        for _ in range(k):
            sessions.append(open_session(manager, config.path, config.seconds))
        cpu0, start_s = process_cpu_s(), perf_s()
        for session_id, _ in sessions:  # each ends by itself after config.seconds
            manager.pipeline(session_id).wait(
                max(0.0, config.seconds + 10.0 - (perf_s() - start_s)))
        wall_s, cpu_s = perf_s() - start_s, process_cpu_s() - cpu0
        pipelines = [manager.pipeline(sid) for sid, _ in sessions]
        figures = [session_figures(p, counter, config.hop_s)
                   for p, (_, counter) in zip(pipelines, sessions, strict=True)]
        pooled = np.concatenate([p.stats.series("latency_ms.total") for p in pipelines])
    finally:
        joined = manager.stop_all()
        rss.stop()
    executor = {"model": _stats_since(before["model"], shared.model.stats()),
                "words": _stats_since(before["words"], shared.words.stats())}
    if shared.classifier is not None:
        executor["expression"] = _stats_since(before["expression"],
                                              shared.classifier.executor.stats())
    total_media_s = sum(f["media_s"] for f in figures)
    drops = _sum_drops(figures)
    rates = [f["updates_per_s"] for f in figures]
    return {
        "sessions": k, "seconds": config.seconds, "hop_rate_hz": round(1.0 / config.hop_s, 2),
        "wall_s": round(wall_s, 1), "media_s_total": round(total_media_s, 1),
        "keeps_up": all(f["keeps_up"] for f in figures),
        "sessions_keeping_up": sum(f["keeps_up"] for f in figures),
        "updates_per_s": {"min": min(rates), "mean": round(float(np.mean(rates)), 2)},
        "latency_ms_total": _pct(pooled),
        "drops": drops,
        "drops_total_items": sum(v for kind, v in drops.items() if kind != AUDIO_LOST),
        "drops_lost_items": sum(f["lost_items"] for f in figures),
        "stage_wall_s_per_media_s": _mean_stages(figures),
        "bytes_per_media_s": round(float(np.mean([f["bytes_per_media_s"] for f in figures]))),
        "process_cpu_s_per_media_s": round(cpu_s / max(total_media_s, 1e-6), 3),
        "process_cores_busy": round(cpu_s / max(wall_s, 1e-6), 2),
        "peak_rss_mib": max(m for _, m in rss.samples),
        "executor": executor,
        "threads_joined": joined,
        "per_session": figures,
    }


def _stats_since(before, now) -> dict:
    """An executor's `ExecutorStats` counted since ``before`` (``max_batch``: since start)."""
    windows, batches = now.windows - before.windows, now.batches - before.batches
    return {**asdict(now), "windows": windows, "batches": batches,
            "drops": now.drops - before.drops, "failures": now.failures - before.failures,
            "mean_batch": windows / batches if batches else 0.0}


def _mean_stages(figures: list[dict]) -> dict[str, float]:
    stages = sorted({s for f in figures for s in f["stage_wall_s_per_media_s"]})
    return {s: round(float(np.mean([f["stage_wall_s_per_media_s"].get(s, 0.0)
                                    for f in figures])), 4) for s in stages}
