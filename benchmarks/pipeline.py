"""Latency benchmark (not a test): replay a recording at real speed through the live
pipeline and report what a user would feel, for each streaming ASR policy side by side.

    python -m benchmarks.pipeline --source assets/demo.mp4 [--minutes 10] [--checkpoint DIR]
                                  [--policies pause,agreement] [--script FILE]
                                  [--rss-every 30] [--warmup-min 2] [--tag TAG] [--json OUT]
                                  [--log-level INFO]

Each policy (`realtime.extract.asr.ASR_POLICIES`; default: all of them, the default policy
first) gets the same two replays of the same recording, one after the other in one run: a
one-thread replay without pacing (each stage's CPU, and the word error rate of the committed
words against ``--script``, by default ``<source>_script.txt`` next to the source, e.g.
assets/demo_script.txt), then the real-speed replay. Writes
``benchmarks/results/realtime_bench[_TAG].json`` (or ``--json OUT``: ``policies`` maps each
policy to its figures) and one plot per policy next to it (``_<policy>.png``) with: per-stage
latency
p50/p95/p99 (ms); word commit latency (end of a spoken word -> its commit); each stage's
compute as a fraction of real time (CPU seconds per media second, measured in a one-thread
replay first so each stage's CPU is its own; the total from the real-speed run); drops;
process CPU use; latency per minute (flat over a long replay?) and the machine's load
average (on a shared machine other processes inflate every figure). ``--minutes`` replays
the source repeatedly for that long (the soak); the process's RSS is sampled every
``--rss-every`` seconds (`benchmarks.memory`) and judged flat when it stays within 5 % of its
value after ``--warmup-min`` minutes.

It opens the runtime (`realtime.runtime`) for the engine and drives each policy's `Pipeline`
itself: the policy is the engine's (`Engine.with_asr_policy`), which a registry's sessions share.

Targets (2-core CPU): face and voice capture->prediction p95 <= 250 ms; committed words
p50 <= 1.0 s and p95 <= 2.0 s after spoken; ASR <= 0.45 and the whole process <= 0.6
CPU-seconds per media second; flat latency over 10 min; RSS flat within 5 % after
warm-up.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.memory import FLAT_PCT, RssSampler
from models.env import add_log_level, configure_logging
from realtime.clock import SessionClock, perf_s, wall_time_iso
from realtime.eval.wer import wer
from realtime.runtime import apply_process_settings
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
              cpu_s: float, drops: dict, meta: dict, fast: FastPass) -> dict:
    latency = {s: _pct(stats.percentiles(f"latency_ms.{s}")) for s in STAGES}
    words = _pct(stats.percentiles("word_commit_ms"))
    wall = compute_fractions(stats, replay_s)
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

    asr_cpu = fast.stage_cpu.get("asr", 0.0)
    targets = {
        "voice_capture_to_prediction_p95_le_250ms": p95("audio_total") <= 250,
        "face_capture_to_prediction_p95_le_250ms": p95("video_total") <= 250,
        "word_commit_p50_le_1000ms": bool(words and words["p50"] <= 1000),
        "word_commit_p95_le_2000ms": bool(words and words["p95"] <= 2000),
        "asr_cpu_le_0.45_per_media_s": asr_cpu <= 0.45,
        "process_cpu_le_0.6_per_media_s": total_compute <= 0.6,
    }
    return {
        **meta,
        "asr_cpu_s_per_media_s": asr_cpu,
        "process_cpu_s_per_media_s": total_compute,
        "wer_fast_replay": fast.wer,
        "words_fast_replay": fast.words,
        "word_commit_ms_fast_replay": fast.commit_ms,
        "replayed_s": round(replay_s, 1),
        "wall_s": round(wall_s, 1),
        "predictions": len(rows),
        "latency_ms": latency,
        "word_commit_ms": words,
        "compute_fraction_of_real_time": fast.stage_cpu,
        "total_compute_fraction_of_real_time": total_compute,
        "wall_compute_fraction_of_real_time": wall,
        "cpu": {"process_cpu_s": round(cpu_s, 1), "cores_busy": round(cpu_s / wall_s, 2),
                "cpu_count": os.cpu_count(), "load_average_end": list(os.getloadavg())},
        "drops": drops,
        "latency_per_minute": per_minute,
        "targets_met": targets,
    }


def compute_fractions(stats: RunStats, media_s: float) -> dict[str, float]:
    """Each stage's wall compute seconds (time inside its calls) per second of media."""
    return {stage: round(sec / media_s, 4) for stage, (sec, _) in stats.compute().items()}


@dataclass(frozen=True)
class FastPass:
    """stage_cpu: CPU seconds per media second per stage; words: the committed words;
    wer: their word error rate against the script (None without one); commit_ms: word
    end -> commit in replay time (compute takes no data time: the policy's own delay)."""

    stage_cpu: dict[str, float]
    words: str
    wer: float | None
    commit_ms: dict | None


def cpu_pass(engine, path: Path, hop_s: float, script: str | None) -> FastPass:
    """Per-stage CPU seconds per second of media and the committed words, from one replay of
    ``path`` driven by one thread (so the process CPU measured around each stage call is
    that stage's own)."""
    from realtime.clock import ReplayClock
    from realtime.pipeline import Pipeline
    from realtime.sources import FileSource

    source = FileSource(path, realtime=False, clock=ReplayClock())
    words: list[str] = []
    pipeline = Pipeline(source, engine, hop_s=hop_s,
                        on_prediction=lambda pr: words.extend(pr.new_words))
    pipeline.run_to_end()
    media_s = max(source.clock.now_s() - source.started_at_s, 1e-6)
    text = " ".join(words)
    return FastPass(
        stage_cpu={stage: round(sec / media_s, 4) for stage, sec in pipeline.stats.cpu().items()},
        words=text, wer=None if script is None else round(wer(script, text), 4),
        commit_ms=_pct(pipeline.stats.percentiles("word_commit_ms")))


def script_text(path: Path | None, source: Path) -> str | None:
    """The words of the script (``<source stem>_script.txt`` by default; its TSV lines
    ``start_s end_s polarity text`` or plain text), or None when there is none."""
    path = path or source.with_name(f"{source.stem}_script.txt")
    if not path.is_file():
        return None
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return " ".join(ln.split("\t")[-1] for ln in lines)


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
        axes[1].axvline(1000, color="red", lw=1, ls="--", label="1.0 s p50 target")
        axes[1].legend(fontsize=8)
    axes[1].set(xlabel="word end -> commit (ms)", ylabel="words", title="word commit latency")
    compute = summary["compute_fraction_of_real_time"]
    axes[2].bar([*compute, "total (live)"],
                [*compute.values(), summary["total_compute_fraction_of_real_time"]],
                color="tab:gray")
    axes[2].axhline(0.6, color="red", lw=1, ls="--", label="0.6 total target")
    axes[2].set(ylabel="CPU seconds / media second",
                title=f"compute (total {summary['total_compute_fraction_of_real_time']:.2f})")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"policy {summary['asr_policy']}: {summary['source']} x "
                 f"{summary['replayed_s']:.0f} s, {summary['model']}, "
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
    p.add_argument("--policies", default="",
                   help="comma-separated ASR policies (default: all, the default one first)")
    p.add_argument("--script", type=Path, help="what the recording says, for the WER "
                   "(default: <source stem>_script.txt next to it)")
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
    apply_process_settings()

    from realtime.engine import EngineError
    from realtime.extract.asr import ASR_POLICIES, DEFAULT_ASR_POLICY
    from realtime.runtime import Runtime, RuntimeConfig
    from realtime.sources import SourceError

    policies = [x for x in args.policies.split(",") if x] if args.policies else [
        DEFAULT_ASR_POLICY, *(x for x in ASR_POLICIES if x != DEFAULT_ASR_POLICY)]
    unknown = [x for x in policies if x not in ASR_POLICIES]
    if unknown:
        print(f"error: unknown ASR policy {unknown[0]!r}: use one of {', '.join(ASR_POLICIES)}",
              file=sys.stderr)
        return 2
    if not args.source.is_file():
        print(f"error: no such file: {args.source}", file=sys.stderr)
        return 2
    try:  # the runtime's engine: each policy's pipeline is built on it below (no session
        # of its registry, so nothing to close)
        engine = Runtime.open(RuntimeConfig(checkpoint_dir=args.checkpoint,
                                            asr_model=args.asr_model, device="auto")).engine
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    script = script_text(args.script, args.source)
    stem = "realtime_bench" + (f"_{args.tag}" if args.tag else "")
    json_path = args.json or args.out / f"{stem}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    results = {}
    for policy in policies:
        try:
            results[policy] = run_policy(engine.with_asr_policy(policy), policy, args, script,
                                         json_path.with_name(f"{json_path.stem}_{policy}.png"))
        except (SourceError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    summary = {"source": str(args.source), "minutes": args.minutes, "started": wall_time_iso(),
               "default_policy": DEFAULT_ASR_POLICY, "script": script is not None,
               "side_by_side": side_by_side(results), "policies": results}
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary["side_by_side"], indent=1))
    print(f"wrote {json_path} and one .png per policy")
    return 0


def side_by_side(results: dict[str, dict]) -> dict[str, dict]:
    """The figures the ASR goals name, one row per policy."""
    out = {}
    for policy, r in results.items():
        words = r["word_commit_ms"] or {}
        out[policy] = {
            "word_commit_ms_p50_p95_p99": [words.get("p50"), words.get("p95"), words.get("p99")],
            "asr_cpu_s_per_media_s": r["asr_cpu_s_per_media_s"],
            "process_cpu_s_per_media_s": r["process_cpu_s_per_media_s"],
            "wer_fast_replay": r["wer_fast_replay"],
            "load_average_start_end": [r["load_average_start"][0],
                                       r["cpu"]["load_average_end"][0]],
        }
    return out


def run_policy(engine, policy: str, args: argparse.Namespace, script: str | None,
               png: Path) -> dict:
    """The one-thread pass, then the real-speed replay, of one policy."""
    from realtime.pipeline import Pipeline
    from realtime.sources import FileSource

    log.info("%s: one-thread replay of %s for each stage's CPU and the WER", policy, args.source)
    fast = cpu_pass(engine, args.source, args.hop, script)
    log.info("%s: real-speed replay%s", policy,
             f" for {args.minutes:g} min" if args.minutes else "")
    clock = SessionClock()
    repeat = args.minutes * 60.0 if args.minutes else None
    source = FileSource(args.source, realtime=True, clock=clock, repeat_until_s=repeat)
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
    rss.stop()  # its last sample before the session's state is freed, not after
    if not pipeline.stop():
        log.warning("the pipeline's threads did not stop within 2 s")
    cpu1, wall_s = os.times(), perf_s() - wall0
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    replay_s = max((t for t, _ in rows), default=0.0) - source.started_at_s
    meta = {"asr_policy": policy, "source": str(args.source), "model": engine.model_name,
            "device": engine.device, "asr_model": args.asr_model, "hop_s": args.hop,
            "started": wall_time_iso(), "load_average_start": load_start,
            "error": pipeline.error}
    rel = [(t - source.started_at_s, lat) for t, lat in rows]
    summary = summarize(pipeline.stats, rel, max(replay_s, 1e-6), wall_s, cpu_s,
                        pipeline.drops, meta, fast)
    summary["rss_mib"] = rss.summary(args.warmup_min * 60.0)
    flat = summary["rss_mib"].get(f"flat_within_{FLAT_PCT:g}_pct")
    if flat is not None:
        summary["targets_met"][f"rss_flat_within_{FLAT_PCT:g}_pct"] = flat
    plot(rel, pipeline.stats, summary, png)
    return summary


if __name__ == "__main__":
    sys.exit(main())
