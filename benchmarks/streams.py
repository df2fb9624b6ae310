"""Many streams, one model: latency and throughput of cross-stream batching against one forward
per window, in the same run; or K whole live sessions at real speed (``--live``).

    python -m benchmarks.streams [--streams 10,20,40,80] [--seconds 20] [--rate-hz 10]
                                 [--backend local|ray] [--device cpu|cuda] [--max-batch 64]
                                 [--max-wait-ms 10] [--torch-threads 1] [--source FILE]
                                 [--windows FILE | --save-windows FILE] [--json OUT]
    python -m benchmarks.streams --live 1,2,4 [--seconds 60] [--source FILE] [--json OUT]
                                 [--no-stage-cpu]

Windows mode: real windows of ``--source`` (default the bundled recording, replayed with
``--fast``; or ``--windows FILE``, then only the sentiment model is loaded) are submitted by
N streams at ``--rate-hz`` each, at most one in flight per stream (a window due while the
previous is unanswered is a drop), for ``--seconds`` per run, through the in-process
`realtime.serving.executor.BatchingExecutor` (``--backend local``) or the Ray Serve
deployment on a local Ray instance (``--backend ray``), batched and unbatched (batch size 1)
at every N. Before anything is timed the model runs on every batch shape the executor can
form (`warm_up`: on CUDA every size class and length class Triton and cuDNN compile for);
masks stay on the device (nothing reads them). Latency is in ms from a window's due time to
its answer. Writes
benchmarks/results/streams_<device>.json (``_ray`` added for ``--backend ray``; ``--json
OUT`` elsewhere): per backend, mode and N a `StreamsResult` (``p50_ms``, ``p95_ms``,
``p99_ms``, ``throughput_per_s``, ``drops``, ``errors``, ``mean_batch``, ``cpu_s_per_s``,
``rss_mib``, ``gpu_mib``), the load average at start and end, and ``max_streams``: per mode
the largest N with p95 <= 150 ms (CPU) or 50 ms (CUDA) and no drops; a plot of p95 against N
next to it (.png). One line per run on stdout, then ``{"max_streams": ..., "json": PATH}``.

Live mode: K full sessions (ASR, face, acoustic, expression, the model;
`benchmarks.live_sessions`) each K in turn, sharing one executor, for ``--seconds`` each.
Writes benchmarks/results/streams_live_<device>.json: per K whether every session kept up
with the 5 Hz hop, updates/s, capture -> prediction latency, drops, CPU per media second,
the bytes of media a session's source delivered per media second (``bytes_per_media_s``) and
peak RSS, and ``max_live_sessions`` (the largest K whose sessions all kept up); with each
stage's one-thread CPU per media second measured first unless ``--no-stage-cpu``.

Runs on the calling thread plus the executor's (or Ray's) threads; reads the wall clock only
through `realtime.clock`. Exit status 0; 2 for bad arguments, a missing file or model, or a
backend that cannot start. How it measures: docs/notes/streams.md; results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import heapq
import json
import logging
import os
import platform
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from models.env import add_log_level, configure_logging
from realtime.assets import demo_recording
from realtime.clock import SessionClock, wall_time_iso
from realtime.runtime import ProcessSettings, apply_process_settings
from realtime.stats import process_cpu_s

log = logging.getLogger(__name__)

RESULTS = Path(__file__).resolve().parent / "results"
P95_LIMIT_MS = {"cpu": 150.0, "cuda": 50.0}


@dataclass(frozen=True)
class StreamsResult:
    """One (mode, N) run. Latencies in ms from a window's due time to its answer."""

    streams: int
    submitted: int
    answered: int
    drops: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    throughput_per_s: float
    mean_batch: float
    cpu_s_per_s: float
    rss_mib: float
    gpu_mib: float


def record_windows(engine, source: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every window the model sees when ``source`` is replayed with ``--fast``."""
    from realtime.clock import ReplayClock
    from realtime.pipeline import Pipeline
    from realtime.sources import FileSource

    windows = []
    pipeline = Pipeline(FileSource(source, realtime=False, clock=ReplayClock()), engine,
                        on_window=[lambda w, _p: windows.append((w.text, w.audio, w.video))])
    pipeline.run_to_end()
    if not windows:
        raise RuntimeError(f"replaying {source} gave no windows")
    return windows


def save_windows(path: Path, windows) -> Path:
    from models.data.sessions import pack_steps, save_npz_atomic

    return save_npz_atomic(path, pack_steps(*zip(*windows, strict=True)))


def load_windows(path: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    from models.data.sessions import unpack_steps

    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (make it with --save-windows {path})")
    with np.load(path, allow_pickle=False) as f:
        text, audio, video = unpack_steps({k: f[k] for k in f.files})
    return list(zip(text, audio, video, strict=True))


def rss_mib() -> float:
    """Resident memory of this process (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def drive(executor, windows, streams: int, seconds: float, rate_hz: float) -> StreamsResult:
    """``streams`` streams at ``rate_hz`` for ``seconds`` through ``executor`` (started)."""
    import torch

    clock = SessionClock()
    period_s = 1.0 / rate_hz
    latencies: list[float] = []
    lock = threading.Lock()
    in_flight: list = [None] * streams
    counts = {"submitted": 0, "drops": 0, "errors": 0}
    # stream i's k-th window is due at start + (i / streams + k) * period
    dues = [((i / streams) * period_s, i) for i in range(streams)]  # a heap of (due, stream)
    nth = [0] * streams
    before = executor.stats()  # the Ray deployment counts across runs: this run's share
    cpu0, start_s = process_cpu_s(), clock.now_s()

    def answered(due_s: float):
        def done(future) -> None:
            with lock:
                if future.exception() is not None:
                    counts["errors"] += 1
                else:
                    latencies.append((clock.now_s() - due_s) * 1000.0)
        return done

    while True:
        offset_s, i = dues[0]
        if offset_s >= seconds:
            break
        due_s = start_s + offset_s
        clock.sleep_until(due_s)
        previous = in_flight[i]
        if previous is not None and not previous.done():
            counts["drops"] += 1  # the stream is still waiting: this window is skipped
        else:
            w = windows[(nth[i] * 7 + i * 13) % len(windows)]
            future = executor.submit(w)
            future.add_done_callback(answered(due_s))
            in_flight[i] = future
            counts["submitted"] += 1
        nth[i] += 1
        heapq.heapreplace(dues, ((i / streams + nth[i]) * period_s, i))
    for future in in_flight:
        if future is not None:
            try:
                future.result(timeout=30)
            except Exception:  # counted by its callback
                pass
    wall_s = clock.now_s() - start_s
    cpu_s = process_cpu_s() - cpu0
    stats = executor.stats()
    windows_run, batches = stats.windows - before.windows, stats.batches - before.batches
    lat = np.asarray(latencies) if latencies else np.asarray([np.nan])
    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
    return StreamsResult(
        streams=streams, submitted=counts["submitted"], answered=len(latencies),
        drops=counts["drops"] + stats.drops - before.drops, errors=counts["errors"],
        p50_ms=round(float(np.percentile(lat, 50)), 2),
        p95_ms=round(float(np.percentile(lat, 95)), 2),
        p99_ms=round(float(np.percentile(lat, 99)), 2),
        throughput_per_s=round(len(latencies) / wall_s, 1),
        mean_batch=round(windows_run / batches if batches else 0.0, 2),
        cpu_s_per_s=round(cpu_s / wall_s, 3),
        rss_mib=round(rss_mib(), 1), gpu_mib=round(gpu, 1))


def warm_up_shapes(windows, max_batch: int, full: bool) -> list[list]:
    """The batches `warm_up` runs: every batch size up to 16, then the powers of two and
    ``max_batch``, each with its windows cut to 1, 16 and 17 steps and left whole, so that
    every variant Triton and cuDNN compile for the shapes the executor forms (a size or a
    length that is 1, a multiple of 16, or neither) is compiled before anything is timed.
    ``full=False`` (no Triton: the CPU): the sizes 1 and ``max_batch`` at whole length."""
    top = max(1, max_batch)
    sizes = ({*range(1, min(16, top) + 1), *(2**k for k in range(top.bit_length())), top}
             if full else {1, top})
    cuts = (1, 16, 17, None) if full else (None,)
    batches = []
    for size in sorted(sizes):
        picked = [windows[i % len(windows)] for i in range(size)]
        for cut in cuts:
            batches.append([tuple(m[:cut] for m in w) for w in picked])
    return batches


def warm_up(predict, windows, max_batch: int, full: bool) -> dict:
    """Runs ``predict`` (a batch -> answers) on every batch of `warm_up_shapes`; returns
    how many and how long (s)."""
    clock = SessionClock()
    start_s = clock.now_s()
    batches = warm_up_shapes(windows, max_batch, full)
    for batch in batches:
        predict(batch)
    return {"batches": len(batches), "seconds": round(clock.now_s() - start_s, 2)}


def ray_backends(args: argparse.Namespace, modes: dict, stack: contextlib.ExitStack) -> dict:
    """One Ray Serve application per mode on a local Ray instance (closed by ``stack``):
    mode -> its `realtime.serving.ray_serve.RayModels`. Raises
    `realtime.serving.backend.ServingError`."""
    from realtime.serving.backend import ServingError
    from realtime.serving.ray_serve import RayServe, RayServeConfig, RayServeError

    served = {}
    for mode, config in modes.items():
        try:
            connection = RayServe.connect(RayServeConfig(
                checkpoint_dir=args.checkpoint, num_gpus=None if args.device == "cuda" else 0.0,
                app_name=f"streams-{mode}", model=config, words=config))
        except RayServeError as exc:
            raise ServingError(str(exc)) from None
        stack.callback(connection.close)
        served[mode] = connection.models
    return served


def max_streams(runs: list[StreamsResult], limit_ms: float) -> int:
    """The largest N whose run held p95 <= limit with no drops (0 if none did)."""
    ok = [r.streams for r in runs if r.p95_ms <= limit_ms and r.drops == 0 and r.errors == 0]
    return max(ok, default=0)


def plot(results: dict[str, list[StreamsResult]], limit_ms: float, device: str,
         path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for mode, runs in results.items():
        ax.plot([r.streams for r in runs], [r.p95_ms for r in runs], "o-", label=f"{mode} p95")
        ax.plot([r.streams for r in runs], [r.p50_ms for r in runs], ":", alpha=0.6,
                label=f"{mode} p50")
    ax.axhline(limit_ms, color="grey", ls="--", label=f"p95 limit {limit_ms:g} ms")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("concurrent streams at 10 Hz")
    ax.set_ylabel("window -> prediction latency (ms)")
    ax.set_title(f"One model for many streams ({device})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def device_label(device: str) -> str:
    """The GPU's name, or the CPU, its cores and the torch threads a new thread (an executor,
    a session's) runs with: the main thread's count can differ (CTranslate2 sets OpenMP's to
    2 in the thread that loads Whisper)."""
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name()
    threads: list[int] = []
    probe = threading.Thread(target=lambda: threads.append(torch.get_num_threads()))
    probe.start()
    probe.join()
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch threads {threads[0]}")


def positive_ints(text: str, flag: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4] (sorted, unique); ValueError naming ``flag`` otherwise."""
    try:
        counts = sorted({int(n) for n in text.split(",") if n.strip()})
        if counts and counts[0] >= 1:
            return counts
    except ValueError:
        pass
    raise ValueError(f"{flag} must be positive integers, got {text!r}")


def live(args: argparse.Namespace, counts: list[int]) -> int:
    """``--live``: K full sessions at real speed for each K (see the module doc)."""
    from benchmarks.live_sessions import LiveConfig, live_runtime_config, run_live
    from benchmarks.pipeline import cpu_pass
    from realtime.engine import EngineError
    from realtime.runtime import Runtime
    from realtime.serving.executor import BatchConfig
    from realtime.sources import SourceError

    batch = BatchConfig(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms)
    config = LiveConfig(args.source, args.seconds, args.hop)
    try:
        with Runtime.open(live_runtime_config(counts, config, args.checkpoint, args.device,
                                              batch)) as runtime:
            engine = runtime.engine
            stage_cpu = (None if args.no_stage_cpu
                         else cpu_pass(engine, args.source, args.hop, None).stage_cpu)
            load_start = list(os.getloadavg())
            runs = {}
            for k in counts:
                run = runs[str(k)] = run_live(runtime, k, config)
                lat = run["latency_ms_total"] or {}
                print(f"live {k:3d} sessions: keep up {run['sessions_keeping_up']}/{k}  "
                      f"updates/s min {run['updates_per_s']['min']:.2f}  p50 {lat.get('p50')} "
                      f"ms  p95 {lat.get('p95')} ms  lost items {run['drops_lost_items']}  CPU "
                      f"{run['process_cpu_s_per_media_s']:.2f} s per media s  media "
                      f"{run['bytes_per_media_s'] / 1e6:.2f} MB/s a session  peak RSS "
                      f"{run['peak_rss_mib']:.0f} MiB", flush=True)
    except (EngineError, SourceError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = {
        "device": device_label(args.device), "started": wall_time_iso(), "source": str(args.source),
        "model": engine.model_name, "hop_s": args.hop, "seconds": args.seconds,
        "batch_config": asdict(batch),
        "load_average_start": load_start, "load_average_end": list(os.getloadavg()),
        "stage_cpu_s_per_media_s_one_thread": stage_cpu,
        "max_live_sessions": max((k for k in counts if runs[str(k)]["keeps_up"]), default=0),
        "runs": runs,
    }
    path = args.json or RESULTS / f"streams_live_{args.device}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({"max_live_sessions": summary["max_live_sessions"], "json": str(path)}))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.streams",
                                description=__doc__.split("\n")[0])
    p.add_argument("--streams", default="10,20,40,80",
                   help="comma-separated numbers of concurrent streams")
    p.add_argument("--live", metavar="K[,K...]",
                   help="instead: K full sessions of --source at real speed, each K in turn")
    p.add_argument("--hop", type=float, default=0.2, help="--live: the sessions' tick (s)")
    p.add_argument("--no-stage-cpu", action="store_true",
                   help="--live: skip the one-thread replay that measures each stage's CPU")
    p.add_argument("--seconds", type=float, default=20.0,
                   help="each run's length (--live: each session's real-speed replay)")
    p.add_argument("--rate-hz", type=float, default=10.0, help="windows per second per stream")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: the in-process executor; ray: the Ray Serve deployment on a "
                        "local Ray instance")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch intra-op threads on CPU (default 1, as the live engine uses)")
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--max-wait-ms", type=float, default=10.0)
    p.add_argument("--source", type=Path, default=demo_recording(),
                   help="recording the windows come from (default: the bundled one)")
    p.add_argument("--windows", type=Path,
                   help="read the windows from this file (see --save-windows) instead of "
                        "replaying a recording; only the sentiment model is loaded")
    p.add_argument("--save-windows", type=Path, help="write the recorded windows here")
    p.add_argument("--checkpoint", type=Path, help="sentiment model folder (default bundled)")
    p.add_argument("--json", type=Path,
                   help="results file (default benchmarks/results/streams_<device>.json, "
                        "streams_<device>_ray.json for --backend ray); "
                        "the plot is written next to it (.png)")
    add_log_level(p)
    args = p.parse_args(argv)
    configure_logging(args.log_level)
    apply_process_settings(ProcessSettings(
        torch_threads=args.torch_threads, device=args.device,
        fix_malloc=bool(args.live) or args.windows is None))  # as Engine.load did
    try:
        counts = positive_ints(args.live or args.streams, "--live" if args.live else "--streams")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.live:
        if args.backend != "local" or args.windows:
            print("error: --live runs whole sessions in this process (no --backend ray, "
                  "no --windows)", file=sys.stderr)
            return 2
        return live(args, counts)
    return windows_mode(args, counts)


def windows_mode(args: argparse.Namespace, counts: list[int]) -> int:
    """The windows mode: each N of ``counts`` batched and unbatched (see the module doc)."""
    from realtime.engine import EngineError
    from realtime.runtime import Runtime, RuntimeConfig
    from realtime.serving.executor import BatchConfig, BatchingExecutor
    from realtime.sources import SourceError

    # the runtime's engine only: the executors measured are built below, and the runtime has
    # nothing to close (no session, shared executor or backend runs in it)
    try:
        engine = Runtime.open(RuntimeConfig(
            checkpoint_dir=args.checkpoint, device=args.device,
            stages=args.windows is None, words=args.windows is None)).engine
        windows = (load_windows(args.windows) if args.windows
                   else record_windows(engine, args.source))
        if args.save_windows:
            save_windows(args.save_windows, windows)
        batched = BatchConfig(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms)
    except (EngineError, SourceError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    device_name = device_label(args.device)
    limit_ms = P95_LIMIT_MS[args.device]
    predict = functools.partial(engine.predict_batch, with_masks=False)  # nothing reads them
    warmed = warm_up(predict, windows, args.max_batch, full=args.device == "cuda")
    log.info("warm-up: %d batches in %.1f s", warmed["batches"], warmed["seconds"])
    modes = {"batched": batched, "unbatched": BatchConfig(max_batch=1, max_wait_ms=0.0)}
    results: dict[str, list[StreamsResult]] = {m: [] for m in modes}
    load_start = list(os.getloadavg())
    with contextlib.ExitStack() as stack:
        try:
            served = ray_backends(args, modes, stack) if args.backend == "ray" else {}
        except RuntimeError as exc:  # ServingError
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for n in counts:  # both modes at every N, so their ratio holds on a noisy machine
            for mode, config in modes.items():
                with (contextlib.nullcontext(served[mode]) if served else BatchingExecutor(
                        predict, config, name="executor:model")) as executor:
                    run = drive(executor, windows, n, args.seconds, args.rate_hz)
                results[mode].append(run)
                log.info("%s %d streams: p95 %.1f ms, %d drops", mode, n, run.p95_ms, run.drops)
                print(f"{args.backend} {mode:9s} {n:5d} streams: p50 {run.p50_ms:8.1f} ms  p95 "
                      f"{run.p95_ms:8.1f} ms  p99 {run.p99_ms:8.1f} ms  "
                      f"{run.throughput_per_s:7.1f}/s  drops {run.drops}  mean batch "
                      f"{run.mean_batch}", flush=True)
    steps = np.asarray([w[0].shape[0] for w in windows])
    summary = {
        "device": device_name, "device_kind": args.device, "backend": args.backend,
        "started": wall_time_iso(),
        "load_average_start": load_start, "load_average_end": list(os.getloadavg()),
        "model": engine.model_name, "rate_hz": args.rate_hz, "seconds": args.seconds,
        "p95_limit_ms": limit_ms, "batch_config": asdict(batched), "warm_up": warmed,
        "windows": {"source": str(args.windows or args.source), "count": int(len(steps)),
                    "steps_p50": float(np.median(steps)), "steps_max": int(steps.max())},
        "results": {args.backend: {m: {str(r.streams): asdict(r) for r in runs}
                                   for m, runs in results.items()}},
        "max_streams": {m: max_streams(runs, limit_ms) for m, runs in results.items()},
    }
    suffix = "" if args.backend == "local" else f"_{args.backend}"
    path = args.json or RESULTS / f"streams_{args.device}{suffix}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    plot(results, limit_ms, device_name, path.with_suffix(".png"))
    print(json.dumps({"max_streams": summary["max_streams"], "json": str(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
