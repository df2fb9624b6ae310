"""Latency benchmark (not a test): replay a recording at real speed through the live
pipeline and report what a user would feel.

    python -m benchmarks.pipeline --source assets/demo.mp4 [--minutes 10] [--checkpoint DIR]
                                  [--rss-every 30] [--warmup-min 2] [--tag TAG] [--json OUT]
                                  [--log-level INFO]

Writes ``benchmarks/results/realtime_bench[_TAG].json`` (or ``--json OUT``) and the plot next
to it (``.png``) with: per-stage latency
p50/p95/p99 (ms); word commit latency (end of a spoken word -> its commit); each stage's
compute as a fraction of real time (CPU seconds per media second, measured in a one-thread
replay first so each stage's CPU is its own; the total from the real-speed run); drops;
process CPU use; latency per minute (flat over a long replay?) and the machine's load
average (on a shared machine other processes inflate every figure). ``--minutes`` replays
the source repeatedly for that long (the soak); the process's RSS is sampled every
``--rss-every`` seconds (`benchmarks.memory`) and judged flat when it stays within 5 % of its
value after ``--warmup-min`` minutes.

Targets (2-core CPU): face and voice capture->prediction p95 <= 250 ms; committed words
p50 <= 1.5 s after spoken; total compute <= 0.5 of real time; flat latency over 10 min;
RSS flat within 5 % after warm-up.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from benchmarks.memory import FLAT_PCT, RssSampler
from models.env import add_log_level, apply_offline_env, configure_logging
from realtime.clock import SessionClock, perf_s, wall_time_iso
from realtime.stats import Percentiles, RunStats

log = logging.getLogger(__name__)

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("audio_capture_to_features", "video_capture_to_features", "audio_features_to_window",
          "video_features_to_window", "window_to_prediction", "audio_total", "video_total",
          "total")
KEPT = ("audio_total", "video_total", "total")  # per prediction, for the per-minute figures


def _pct(p: Percentiles | None) -> dict | None:
    if p is None:
        return None
    return {"n": p.n, "p50": round(p.p50, 1), "p95": round(p.p95, 1), "p99": round(p.p99, 1),
            "mean": round(p.mean, 1), "max": round(p.max, 1)}


def summarize(stats: RunStats, rows: list[tuple[float, dict]], replay_s: float, wall_s: float,
              cpu_s: float, drops: dict, meta: dict, stage_cpu: dict[str, float]) -> dict:
    latency = {s: _pct(stats.percentiles(f"latency_ms.{s}")) for s in STAGES}
    words = _pct(stats.percentiles("word_commit_ms"))
    wall = {stage: round(sec / replay_s, 4) for stage, (sec, _) in stats.compute().items()}
    total_compute = round(cpu_s / replay_s, 4)
    per_minute = []
    for minute in range(int(np.ceil(replay_s / 60.0))):
        sel = [lat for t, lat in rows if minute * 60 <= t < (minute + 1) * 60]
        if sel:
            per_minute.append({
                "minute": minute, "n": len(sel),
                **{f"{k}_p95": round(float(np.percentile([x[k] for x in sel if k in x], 95)), 1)
                   for k in ("audio_total", "video_total", "total") if any(k in x for x in sel)},
            })

    def p95(stage: str) -> float:
        return latency[stage]["p95"] if latency.get(stage) else float("inf")

    targets = {
        "voice_capture_to_prediction_p95_le_250ms": p95("audio_total") <= 250,
        "face_capture_to_prediction_p95_le_250ms": p95("video_total") <= 250,
        "word_commit_p50_le_1500ms": bool(words and words["p50"] <= 1500),
        "total_compute_le_0.5_real_time": total_compute <= 0.5,
    }
    return {
        **meta,
        "replayed_s": round(replay_s, 1),
        "wall_s": round(wall_s, 1),
        "predictions": len(rows),
        "latency_ms": latency,
        "word_commit_ms": words,
        "compute_fraction_of_real_time": stage_cpu,
        "total_compute_fraction_of_real_time": total_compute,
        "wall_compute_fraction_of_real_time": wall,
        "cpu": {"process_cpu_s": round(cpu_s, 1), "cores_busy": round(cpu_s / wall_s, 2),
                "cpu_count": os.cpu_count(), "load_average_end": list(os.getloadavg())},
        "drops": drops,
        "latency_per_minute": per_minute,
        "targets_met": targets,
    }


def cpu_pass(engine, path: Path, hop_s: float) -> dict[str, float]:
    """Per-stage CPU seconds per second of media, from one replay of ``path`` driven by one
    thread (so the process CPU measured around each stage call is that stage's own)."""
    from realtime.clock import ReplayClock
    from realtime.pipeline import Pipeline
    from realtime.sources import FileSource

    source = FileSource(path, realtime=False, clock=ReplayClock())
    pipeline = Pipeline(source, engine, hop_s=hop_s)
    pipeline.run_to_end()
    media_s = max(source.clock.now_s() - source.started_at_s, 1e-6)
    return {stage: round(sec / media_s, 4) for stage, sec in pipeline.stats.cpu().items()}


def plot(rows: list[tuple[float, dict]], stats: RunStats, summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    t = np.array([r[0] for r in rows])
    for key, colour in (("audio_total", "tab:blue"), ("video_total", "tab:orange"),
                        ("total", "tab:green")):
        y = np.array([r[1].get(key, np.nan) for r in rows])
        axes[0].plot(t, y, ".", ms=2, color=colour, label=key)
    axes[0].axhline(250, color="red", lw=1, ls="--", label="250 ms target")
    axes[0].set(xlabel="replay time (s)", ylabel="capture -> prediction (ms)",
                title="latency over the replay")
    axes[0].legend(fontsize=8)
    words = stats.series("word_commit_ms")
    if len(words):
        axes[1].hist(words, bins=30, color="tab:purple")
        axes[1].axvline(1500, color="red", lw=1, ls="--", label="1.5 s target")
        axes[1].legend(fontsize=8)
    axes[1].set(xlabel="word end -> commit (ms)", ylabel="words", title="word commit latency")
    compute = summary["compute_fraction_of_real_time"]
    axes[2].bar([*compute, "total (live)"],
                [*compute.values(), summary["total_compute_fraction_of_real_time"]],
                color="tab:gray")
    axes[2].axhline(0.5, color="red", lw=1, ls="--", label="0.5 total target")
    axes[2].set(ylabel="CPU seconds / media second",
                title=f"compute (total {summary['total_compute_fraction_of_real_time']:.2f})")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"{summary['source']} x {summary['replayed_s']:.0f} s, {summary['model']}, "
                 f"load avg {summary['load_average_start'][0]:.1f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.pipeline",
                                description=__doc__.split("\n")[0])
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--minutes", type=float, help="replay the source repeatedly this long")
    p.add_argument("--checkpoint", type=Path, help="sentiment model folder (default bundled)")
    p.add_argument("--asr-model", default="tiny.en")
    p.add_argument("--hop", type=float, default=0.2)
    p.add_argument("--rss-every", type=float, default=30.0, help="seconds between RSS samples")
    p.add_argument("--warmup-min", type=float, default=2.0,
                   help="minutes before RSS is expected to be flat")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder of the result files")
    p.add_argument("--tag", default="", help="suffix for the result file names")
    p.add_argument("--json", type=Path, help="the results file (default: "
                   "OUT/realtime_bench[_TAG].json); the plot is written next to it (.png)")
    add_log_level(p)
    args = p.parse_args(argv)
    configure_logging(args.log_level)
    apply_offline_env()

    from realtime.engine import Engine, EngineError
    from realtime.pipeline import Pipeline
    from realtime.sources import FileSource, SourceError

    try:
        engine = Engine.load(args.checkpoint, asr_model=args.asr_model, device="auto")
        clock = SessionClock()
        repeat = args.minutes * 60.0 if args.minutes else None
        source = FileSource(args.source, realtime=True, clock=clock, repeat_until_s=repeat)
    except (EngineError, SourceError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log.info("one-thread replay of %s for each stage's CPU", args.source)
    stage_cpu = cpu_pass(engine, args.source, args.hop)
    log.info("real-speed replay%s", f" for {args.minutes:g} min" if args.minutes else "")
    rows: list[tuple[float, dict]] = []
    pipeline = Pipeline(source, engine, hop_s=args.hop,
                        on_prediction=lambda pr: rows.append((pr.t_end_s, {
                            k: pr.latency_ms[k] for k in KEPT if k in pr.latency_ms})))
    load_start = list(os.getloadavg())
    rss = RssSampler(args.rss_every)
    rss.start()
    cpu0, wall0 = os.times(), perf_s()
    pipeline.start()
    pipeline.wait()
    if not pipeline.stop():
        log.warning("the pipeline's threads did not stop within 2 s")
    cpu1, wall_s = os.times(), perf_s() - wall0
    rss.stop()
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    replay_s = max((t for t, _ in rows), default=0.0) - source.started_at_s
    meta = {"source": str(args.source), "model": engine.model_name, "device": engine.device,
            "asr_model": args.asr_model, "hop_s": args.hop, "started": wall_time_iso(),
            "load_average_start": load_start, "error": pipeline.error}
    summary = summarize(pipeline.stats, [(t - source.started_at_s, lat) for t, lat in rows],
                        max(replay_s, 1e-6), wall_s, cpu_s, pipeline.drops, meta, stage_cpu)
    summary["rss_mib"] = rss.summary(args.warmup_min * 60.0)
    flat = summary["rss_mib"].get(f"flat_within_{FLAT_PCT:g}_pct")
    if flat is not None:
        summary["targets_met"][f"rss_flat_within_{FLAT_PCT:g}_pct"] = flat
    stem = "realtime_bench" + (f"_{args.tag}" if args.tag else "")
    json_path = args.json or args.out / f"{stem}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    plot([(t - source.started_at_s, lat) for t, lat in rows], pipeline.stats, summary,
         json_path.with_suffix(".png"))
    lat = summary["latency_ms"]
    print(json.dumps({k: summary[k] for k in ("replayed_s", "total_compute_fraction_of_real_time",
                                              "word_commit_ms", "targets_met")}, indent=1))
    print("p95 ms:", {k: v["p95"] for k, v in lat.items() if v})
    print("rss MiB:", {k: v for k, v in summary["rss_mib"].items() if k != "samples"})
    print(f"wrote {json_path} and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
