"""Which native component grows the soak's memory? One stage at a time, in a loop.

    python -m benchmarks.memory_bisect --stage face|face_expression|asr|whisper|vad|acoustic|
                                               model|words|decode
                                       [--seconds 180] [--every 10] [--source FILE] [--json OUT]

The soak (`benchmarks.pipeline --minutes 10`) grows about 9 MiB a minute and tracemalloc says
it is not Python objects (benchmarks/results/soak_notes.md). Here the source (default: the
bundled recording) is decoded once into memory; then ONE stage is called on it over and over,
as fast as it goes, with media time running on from loop to loop (the face landmarker sees
strictly increasing timestamps, the ASR one continuous stream), for ``--seconds``. RSS is
sampled every ``--every`` seconds (`benchmarks.memory.RssSampler`). Growth is reported per
wall minute and per minute of media processed, the latter comparable across stages and with
the soak (one media minute = one minute of a live session). Run each stage in its own
process: RSS is per process.

Stages: ``face`` (mediapipe FaceLandmarker, VIDEO mode), ``face_expression`` (the same,
feeding face crops to the expression network), ``asr`` (`StreamingASR`: Silero VAD + Whisper,
as a session runs it), ``whisper`` (Whisper alone on 3 s clips), ``vad`` (Silero alone),
``acoustic`` (torchaudio features), ``model`` (the sentiment model on windows of the
recording), ``words`` (the MiniLM word encoder), ``decode`` (PyAV decoding the file, as a
looping `FileSource` does).

It loads the engine itself (`Engine.load`), not the runtime: it drives one stage directly.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.memory import RssSampler, rss_mib, trim_heap
from models.env import add_log_level, configure_logging
from realtime.assets import demo_recording
from realtime.clock import perf_s, wall_time_iso
from realtime.runtime import ProcessSettings, apply_process_settings
from realtime.stats import process_cpu_s

log = logging.getLogger(__name__)

STAGES = ("face", "face_expression", "asr", "whisper", "vad", "acoustic", "model", "words",
          "decode")
PIPELINES = ("pipeline:full", "pipeline:audio", "pipeline:video", "pipeline:no_asr",
             "pipeline:audio+no_asr", "pipeline:audio+no_models", "pipeline:no_models")
RESULTS = Path(__file__).resolve().parent / "results"


def decoded(path: Path):
    """(audio chunks, video frames, media seconds) of one fast replay of ``path``."""
    from realtime.clock import ReplayClock
    from realtime.sources import FileSource
    from realtime.types import AudioChunk

    source = FileSource(path, realtime=False, clock=ReplayClock())
    audio, video = [], []
    for item in source.items():
        (audio if isinstance(item, AudioChunk) else video).append(item)
    media_s = max([a.t0_s + len(a.samples) / a.rate_hz for a in audio]
                  + [f.t_s for f in video] + [1e-3]) - source.started_at_s
    return audio, video, media_s


def one_pass(stage: str, engine, audio, video, media_s: float, path: Path) -> Callable:
    """A function ``run(k)`` that feeds the k-th loop of the media to ``stage``."""
    from dataclasses import replace

    if stage in ("face", "face_expression"):
        expr = engine.stages.new_expression() if stage == "face_expression" else None
        face = engine.stages.new_face(crops=expr) if expr is not None else engine.stages.new_face()

        def run(k: int) -> None:
            for f in video:
                face.insert_frame(replace(f, t_s=f.t_s + k * media_s))
                face.process_iter()
                if expr is not None:
                    expr.process_iter()
        return run
    if stage in ("asr", "acoustic"):
        extractor = engine.stages.new_asr() if stage == "asr" else engine.stages.new_acoustic()
        step_n = 2 if stage == "asr" else 1  # the pipeline's asr_step_s: 0.1 s of 50 ms chunks

        def run(k: int) -> None:
            for i, c in enumerate(audio):
                extractor.insert_audio_chunk(replace(c, t0_s=c.t0_s + k * media_s))
                if (i + 1) % step_n == 0:
                    extractor.process_iter()
        return run
    if stage == "whisper":
        from realtime.extract.asr import asr_policy

        samples = np.concatenate([c.samples for c in audio])
        clip_n = 3 * 16000
        policy = asr_policy("pause")
        whisper = engine.stages.new_asr().model

        def run(_k: int) -> None:
            for i in range(0, len(samples) - clip_n, clip_n):
                whisper.transcribe(samples[i: i + clip_n], prompt=None,
                                   beam_size=policy.beam_size,
                                   min_window_s=policy.encoder_window_s)
        return run
    if stage == "vad":
        from realtime.extract.asr import SileroStream

        vad = SileroStream()

        def run(_k: int) -> None:
            for c in audio:
                vad.push(c.samples)
        return run
    if stage == "model":
        from benchmarks.streams import record_windows

        windows = record_windows(engine, path)

        def run(_k: int) -> None:
            for w in windows:
                engine.predict(*w)
        return run
    if stage == "words":
        from realtime.types import Word

        text = "it was the best of times it was the worst of times".split()
        lists = [[Word(0.3 * i, 0.3 * i + 0.25, t, True) for i, t in enumerate(text[:n])]
                 for n in range(1, len(text) + 1)]

        def run(_k: int) -> None:
            for _ in range(10):
                for words in lists:
                    engine.encode_words(words)
        return run
    if stage == "decode":
        def run(_k: int) -> None:
            decoded(path)
        return run
    raise ValueError(f"unknown stage {stage!r}; one of {', '.join(STAGES)}")


class _NoAsr:
    """A stand-in for the streaming ASR that hears nothing (the pipeline without Whisper)."""

    def insert_audio_chunk(self, chunk) -> None:
        pass

    def process_iter(self, now_s: float | None = None):
        from realtime.extract.asr import AsrUpdate

        return AsrUpdate((), (), 0.0)

    finish = process_iter

    def close_if_quiet(self, now_s: float) -> None:
        return None


class _NoModels:
    """Stand-ins for the two per-tick models (the pipeline without MiniLM and the sentiment
    model): zero word vectors and a neutral answer."""

    def __init__(self, engine) -> None:
        self.dim = engine.layout.text_dim

    def predict(self, text, audio, video):
        from realtime.engine import EngineOutput

        return EngineOutput(0.0, None, "none")

    def encode_words(self, words):
        return np.zeros((len(words), self.dim), np.float32)


def pipeline_run(variant: str, engine, path: Path, seconds: float, paced: bool,
                 sampler: RssSampler) -> tuple[float, float]:
    """The whole pipeline on ``path`` looped for ``seconds`` (wall), with parts left out by
    ``variant``; returns (wall seconds, media seconds)."""
    from dataclasses import replace

    from realtime.clock import ReplayClock, SessionClock
    from realtime.pipeline import Pipeline
    from realtime.sources import FileSource

    parts = set(variant.split("+"))
    if "no_asr" in parts:
        engine = replace(engine, new_asr=_NoAsr)
    source = FileSource(path, realtime=paced, clock=SessionClock() if paced else ReplayClock(),
                        repeat_until_s=1e9)
    source.has_video = source.has_video and "audio" not in parts
    source.has_audio = source.has_audio and "video" not in parts
    pipeline = Pipeline(source, engine, models=_NoModels(engine) if "no_models" in parts
                        else None)
    sampler.start()
    start_s = perf_s()
    if paced:
        pipeline.start()
        pipeline.wait(seconds)
        pipeline.stop()
    else:
        timer = threading.Timer(seconds, source.stop, args=(0.0,))
        timer.start()
        pipeline.run_to_end()
        timer.cancel()
    wall_s = perf_s() - start_s
    sampler.stop()
    return wall_s, source.clock.now_s() - source.started_at_s


MALLOC = ("default", "fixed", "trim")


def _trim_every(every_s: float, stop: threading.Event) -> None:
    while not stop.wait(every_s):
        trim_heap()


def measure(stage: str, path: Path, seconds: float, every_s: float,
            paced: bool = False, malloc: str = "default") -> dict:
    """``malloc``: "default" (glibc as it comes), "fixed" (`realtime.heap.fix_mmap_threshold`,
    as `realtime.runtime.apply_process_settings` does, before anything loads) or "trim"
    (``malloc_trim(0)`` every 30 s on a thread)."""
    from realtime.engine import Engine
    from realtime.heap import fix_mmap_threshold

    if malloc == "fixed" and not fix_mmap_threshold():
        raise RuntimeError("this C library has no mallopt (not glibc)")
    engine = Engine.load(None)
    stop_trim = threading.Event()
    if malloc == "trim":
        threading.Thread(target=_trim_every, args=(30.0, stop_trim), daemon=True).start()
    sampler = RssSampler(every_s)
    cpu0 = process_cpu_s()
    if stage.startswith("pipeline"):
        wall_s, media_total_s = pipeline_run(stage.split(":")[-1], engine, path, seconds,
                                             paced, sampler)
        loops = 0
    else:
        audio, video, media_s = decoded(path)
        run = one_pass(stage, engine, audio, video, media_s, path)
        run(0)  # warm-up: first-call allocations are not growth
        sampler.start()
        start_s, loops = perf_s(), 0
        while perf_s() - start_s < seconds:
            loops += 1
            run(loops)
        wall_s = perf_s() - start_s
        sampler.stop()
        media_total_s = loops * media_s
    (t0, m0), (t1, m1) = sampler.samples[0], sampler.samples[-1]
    # a least-squares slope over all samples: the transient peaks of a single sample do not
    # decide it
    t = np.array([s[0] for s in sampler.samples])
    m = np.array([s[1] for s in sampler.samples])
    slope_per_s = float(np.polyfit(t, m, 1)[0]) if len(t) >= 3 else (m1 - m0) / max(t1 - t0, 1e-9)
    stop_trim.set()
    cpu_s = process_cpu_s() - cpu0
    heap = [h for h in sampler.heap if h is not None]
    rss_before_trim = rss_mib()
    trimmed = trim_heap()
    return {
        "heap_mib_start_end": [heap[0], heap[-1]] if heap else None,
        "rss_after_malloc_trim_mib": [round(rss_before_trim, 1), round(rss_mib(), 1), trimmed],
        "stage": stage, "paced": paced, "malloc": malloc,
        "process_cpu_s_per_media_s": round(cpu_s / max(media_total_s, 1e-9), 3),
        "source": str(path), "started": wall_time_iso(),
        "loops": loops,
        "wall_s": round(wall_s, 1), "media_s": round(media_total_s, 1),
        "media_per_wall": round(media_total_s / wall_s, 2),
        "rss_mib_start_end": [m0, m1], "growth_mib": round(m1 - m0, 1),
        "slope_mib_per_wall_min": round(slope_per_s * 60.0, 2),
        "slope_mib_per_media_min": round(slope_per_s * 60.0 * wall_s / media_total_s, 3),
        "samples": sampler.samples, "heap": sampler.heap,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory_bisect",
                                description=__doc__.split("\n")[0])
    p.add_argument("--stage", choices=(*STAGES, *PIPELINES), required=True)
    p.add_argument("--malloc", choices=MALLOC, default="default",
                   help="glibc malloc as it comes, with the mmap threshold fixed, or trimmed "
                        "every 30 s")
    p.add_argument("--paced", action="store_true",
                   help="pipeline stages: replay at real speed (default: as fast as it goes)")
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--every", type=float, default=10.0, help="seconds between RSS samples")
    p.add_argument("--source", type=Path, default=demo_recording())
    p.add_argument("--json", type=Path, help="append the result as one JSON line to this file")
    args = add_log_level(p).parse_args(argv)
    configure_logging(args.log_level)
    apply_process_settings(ProcessSettings(fix_malloc=args.malloc == "fixed"))
    result = measure(args.stage, args.source, args.seconds, args.every, args.paced, args.malloc)
    line = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(line))
    if args.json:
        with args.json.open("a") as f:
            f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
