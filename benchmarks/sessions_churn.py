"""Memory with sessions coming and going (issue 13: "flat over a 10-minute run with sessions
coming and going"): does a server's RSS stay flat while sessions open and close?

    python -m benchmarks.sessions_churn [--minutes 10] [--max-sessions 2] [--lifetime 10,60]
                                        [--seed 0] [--rss-every 30] [--warmup-min 2]
                                        [--source FILE] [--json OUT]

A `realtime.runtime.Runtime` (one engine, one `SharedModels`, one session registry, as
``python -m realtime`` opens them; `runtime_config`) serves sessions on the bundled
recording (or ``--source``), replayed AT REAL SPEED and looped: paced, because that is how a
server's sessions load it (a fast replay would run one session per core flat out and measure
queue build-up, not churn). While fewer than ``--max-sessions`` run, a
new one opens after a random pause of up to 2 s; each is stopped after a random lifetime
drawn uniformly from ``--lifetime`` (seconds; seeded by ``--seed``, so a rerun opens and
stops the same sequence). RSS is sampled every ``--rss-every`` seconds
(`benchmarks.memory.RssSampler`, with glibc's heap figures) and judged flat when it stays
within 5 % of its value after ``--warmup-min`` minutes.

Reported (JSON, default benchmarks/results/sessions_churn.json, and a plot of RSS and
running sessions against time next to it, .png): sessions opened and closed, sessions whose
threads did not join, errors, RSS after warm-up, growth in MiB and % (to the last sample
taken while sessions still run), MiB/min, flat or not, and threads, open file descriptors
and RSS before the first session and after the last, with the names of any session or
sampler thread still alive (a session that leaves a thread or a file behind
shows there; the first sessions also start a few one-off things: onnxruntime's cache file,
a tqdm monitor thread). The runtime's executor threads run before and after: they are
counted in both thread totals and joined when `main` closes the runtime
(``executor_threads_left``: any still alive after that).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.live_sessions import open_session
from benchmarks.memory import FLAT_PCT, RssSampler, heap_mib, rss_mib
from models.env import add_log_level, configure_logging
from realtime.assets import demo_recording
from realtime.clock import perf_s, wall_time_iso
from realtime.runtime import ProcessSettings, apply_process_settings

log = logging.getLogger(__name__)

RESULTS = Path(__file__).resolve().parent / "results"
MAX_GAP_S = 2.0  # the longest pause before a free slot is filled
# the threads a session and the sampler start (sources name theirs "file:...")
SESSION_THREADS = ("pipeline:", "file:", "session-reaper", "rss-sampler")


@dataclass(frozen=True)
class ChurnConfig:
    """seconds: the whole run; max_sessions: at most this many at once; lifetime_s: (shortest,
    longest) session; seed: the random lifetimes and gaps; rss_every_s, warmup_s: the RSS
    samples and the time before RSS should be flat; hop_s: the sessions' tick; trim_on_stop:
    `SessionManager`'s (False: freed heap pages stay in the process). The registry's settings
    reach the runtime through `runtime_config`."""

    path: Path
    seconds: float
    max_sessions: int = 2
    lifetime_s: tuple[float, float] = (10.0, 60.0)
    seed: int = 0
    rss_every_s: float = 30.0
    warmup_s: float = 120.0
    hop_s: float = 0.2
    trim_on_stop: bool = True

    def __post_init__(self) -> None:
        lo, hi = self.lifetime_s
        if not (0 < lo <= hi) or self.max_sessions < 1 or self.seconds <= 0:
            raise ValueError("need 0 < shortest lifetime <= longest, --max-sessions >= 1 and "
                             f"a positive duration (got {self})")


def runtime_config(config: ChurnConfig, checkpoint_dir: Path | None = None):
    """The `realtime.runtime.RuntimeConfig` `churn` runs in: on the CPU, the per-tick models
    batched across sessions, a registry of ``config.max_sessions`` that reaps none."""
    from realtime.runtime import RuntimeConfig

    return RuntimeConfig(checkpoint_dir=checkpoint_dir, device="cpu", shared_models=True,
                         max_sessions=config.max_sessions, hop_s=config.hop_s,
                         idle_timeout_s=config.seconds + 60.0, trim_on_stop=config.trim_on_stop)


def open_fds() -> int:
    """Open file descriptors of this process (Linux /proc; -1 elsewhere)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def session_threads() -> list[str]:
    """Names of the live threads that sessions, executors or the sampler started."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith(SESSION_THREADS))


def churn(runtime, config: ChurnConfig) -> dict:
    """Sessions opened and stopped in ``runtime``'s registry (a `realtime.runtime.Runtime`
    opened with `runtime_config(config)`) for ``config.seconds`` (see the module doc);
    returns the figures (JSON-ready)."""
    manager = runtime.sessions
    if (manager.max_sessions, manager.hop_s, manager.trim_on_stop) != (
            config.max_sessions, config.hop_s, config.trim_on_stop):
        raise ValueError("churn needs a runtime opened with runtime_config(config)")
    rng = np.random.default_rng(config.seed)
    sampler = RssSampler(config.rss_every_s)
    running: dict[str, float] = {}  # id -> when to stop it (seconds since start)
    timeline: list[tuple[float, int]] = []  # (seconds, sessions running)
    counts = {"opened": 0, "closed": 0, "not_joined": 0, "refused": 0}
    errors: list[str] = []
    tick = threading.Event()
    gc.collect()
    before = {"threads": threading.active_count(), "fds": open_fds()}
    sampler.start()
    start_s = perf_s()
    next_open_s = 0.0

    def stop(session_id: str, now_s: float) -> None:
        error = manager.pipeline(session_id).error
        if error:
            errors.append(error)
        counts["not_joined"] += not manager.stop(session_id)
        counts["closed"] += 1
        del running[session_id]
        timeline.append((round(now_s, 2), len(running)))

    try:
        while (now_s := perf_s() - start_s) < config.seconds:
            for session_id, until_s in list(running.items()):
                if now_s >= until_s:
                    stop(session_id, now_s)
            if len(running) < config.max_sessions and now_s >= next_open_s:
                try:
                    session_id, _ = open_session(manager, config.path, float("inf"))
                except RuntimeError as exc:  # SessionRefused, SourceError
                    counts["refused"] += 1
                    errors.append(str(exc))
                else:
                    running[session_id] = now_s + float(rng.uniform(*config.lifetime_s))
                    counts["opened"] += 1
                    timeline.append((round(now_s, 2), len(running)))
                next_open_s = now_s + float(rng.uniform(0.0, MAX_GAP_S))
            tick.wait(0.25)
    finally:
        sampler.stop()  # the last sample with the sessions still running
        for session_id in list(running):
            stop(session_id, perf_s() - start_s)
        manager.stop_all()
    gc.collect()
    after = {"threads": threading.active_count(), "fds": open_fds(),
             "session_threads_left": session_threads(),
             "rss_mib": round(rss_mib(), 1), "heap_mib": heap_mib()}
    rss = sampler.summary(config.warmup_s)
    return {
        "source": str(config.path), "paced": True, "seconds": config.seconds,
        "max_sessions": config.max_sessions, "lifetime_s": list(config.lifetime_s),
        "seed": config.seed, "trim_on_stop": config.trim_on_stop, **counts, "errors": errors[:10],
        "rss_mib": rss, "heap_mib": sampler.heap,
        "after_warmup_mib": rss.get("after_warmup_mib"),
        "growth_mib": rss.get("growth_mib"), "growth_pct": rss.get("growth_pct"),
        "growth_mib_per_min": rss.get("growth_mib_per_min"),
        f"flat_within_{FLAT_PCT:g}_pct": rss.get(f"flat_within_{FLAT_PCT:g}_pct",
                                                 rss.get("flat")),
        "before_first_session": before, "after_last_session": after,
        "sessions_timeline": timeline,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["rss_mib"]["samples"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([t / 60 for t, _ in samples], [m for _, m in samples], "o-", color="tab:blue")
    ax.set(xlabel="minutes", ylabel="RSS (MiB)",
           title=f"{result['opened']} sessions opened, {result['closed']} closed "
                 f"(at most {result['max_sessions']} at once)")
    warm = result["rss_mib"].get("warmup_s")
    if warm is not None:
        ax.axvline(warm / 60, color="grey", ls=":", label="end of warm-up")
    base = result.get("after_warmup_mib")
    if base:
        ax.axhspan(base, base * (1 + FLAT_PCT / 100), color="tab:green", alpha=0.15,
                   label=f"+{FLAT_PCT:g} % of the RSS after warm-up")
    steps = result["sessions_timeline"]
    if steps:
        ax2 = ax.twinx()
        ax2.step([t / 60 for t, _ in steps], [n for _, n in steps], where="post",
                 color="tab:orange", alpha=0.6)
        ax2.set_ylabel("sessions running", color="tab:orange")
        ax2.set_ylim(0, result["max_sessions"] + 1)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sessions_churn",
                                description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--max-sessions", type=int, default=2)
    p.add_argument("--lifetime", default="10,60",
                   help="shortest,longest session lifetime in seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rss-every", type=float, default=30.0, help="seconds between RSS samples")
    p.add_argument("--warmup-min", type=float, default=2.0)
    p.add_argument("--no-trim", action="store_true",
                   help="keep freed heap pages when a session stops (SessionManager's "
                        "trim_on_stop off), to compare")
    p.add_argument("--source", type=Path, default=demo_recording())
    p.add_argument("--checkpoint", type=Path, help="sentiment model folder (default bundled)")
    p.add_argument("--json", type=Path, help="results file (default "
                   "benchmarks/results/sessions_churn.json); the plot goes next to it (.png)")
    args = add_log_level(p).parse_args(argv)
    configure_logging(args.log_level)
    apply_process_settings(ProcessSettings(device="cpu"))
    from realtime.engine import EngineError
    from realtime.runtime import Runtime

    try:
        lo, hi = (float(x) for x in args.lifetime.split(","))
        config = ChurnConfig(args.source, args.minutes * 60.0, args.max_sessions, (lo, hi),
                             args.seed, args.rss_every, args.warmup_min * 60.0,
                             trim_on_stop=not args.no_trim)
        if not args.source.is_file():
            raise FileNotFoundError(f"no such file: {args.source}")
        runtime = Runtime.open(runtime_config(config, args.checkpoint))
    except (ValueError, FileNotFoundError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with runtime:
        load_start = list(os.getloadavg())
        result = {"started": wall_time_iso(), "model": runtime.engine.model_name,
                  "load_average_start": load_start, **churn(runtime, config),
                  "load_average_end": list(os.getloadavg())}
    result["executor_threads_left"] = sorted(  # after Runtime.close
        t.name for t in threading.enumerate() if t.name.startswith("executor:"))
    path = args.json or RESULTS / "sessions_churn.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, path.with_suffix(".png"))
    keys = ("opened", "closed", "not_joined", "after_warmup_mib", "growth_mib", "growth_pct",
            "growth_mib_per_min", f"flat_within_{FLAT_PCT:g}_pct")
    print(json.dumps({**{k: result[k] for k in keys}, "json": str(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
