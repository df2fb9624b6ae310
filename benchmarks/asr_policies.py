"""The streaming ASR policies alone, in a few minutes: commit latency with compute counted,
CPU and word error rate, on the bundled recording and on continuous speech.

    python -m benchmarks.asr_policies [--policies pause,sparse,agreement] [--hops 1.0,0.75]
                                      [--repeats 2] [--json OUT]

Why, beside `benchmarks.pipeline`: that one replays the whole pipeline at real speed (the
figures a user feels, minutes per policy, on a quiet machine); this one drives only
`StreamingASR` and Whisper, in one thread, so a policy variant is measured in seconds and the
comparison is not blurred by the other stages. The audio arrives in 0.25 s chunks on a
simulated clock that is real time: each chunk becomes available at its end time, and each
`process_iter` call's measured compute moves the clock on (a pass that takes 0.4 s delays
everything after it by 0.4 s, as the ASR thread of a live session is delayed). A word's
commit latency is the simulated time at which it was committed minus the end of the word.
What it leaves out: the other stages' competition for the CPU (face, expression, acoustic
and the model take about 0.2 CPU-seconds per media second in a live session), so the real
pipeline's figures are somewhat higher.

Clips: ``demo``, the bundled recording (short sentences with pauses; WER against its
script), and ``passage``, the Dickens passage of the repeated-phrase test read by espeak-ng
(``en-us``, 175 words per minute: continuous speech with phrases said twice), rendered here.
Policies: the named ones (`realtime.extract.asr.ASR_POLICIES`) and, with ``--hops``, the
default policy with other speech hops (``pause@0.75`` in the output). Each (policy, clip)
runs once to warm up and then ``--repeats`` times; the JSON keeps every repeat. CPU is the
process's CPU seconds per second of audio (Whisper's CTranslate2 threads included).

It loads Whisper itself, not the runtime: it drives `StreamingASR` directly.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from models.env import add_log_level, configure_logging
from realtime.clock import wall_time_iso
from realtime.eval.wer import wer
from realtime.runtime import ProcessSettings, apply_process_settings
from realtime.sources.audio import RATE_HZ
from realtime.stats import process_cpu_s

log = logging.getLogger(__name__)

RESULTS = Path(__file__).resolve().parent / "results"
CHUNK_S = 0.25
PASSAGE = ("It was the best of times, it was the worst of times, it was the age of wisdom, "
           "it was the age of foolishness, we had everything before us, we had nothing before "
           "us, we were all going direct to Heaven, we were all going direct the other way.")


def clips() -> dict[str, tuple[np.ndarray, str]]:
    """name -> (16 kHz mono float32 samples, what is said)."""
    from benchmarks.pipeline import script_text
    from realtime.assets import demo_recording
    from realtime.clock import ReplayClock
    from realtime.eval.spoken_mosi import Voice, render, to_16k
    from realtime.sources import FileSource
    from realtime.types import AudioChunk

    demo = demo_recording()
    chunks = [item for item in FileSource(demo, realtime=False, clock=ReplayClock()).items()
              if isinstance(item, AudioChunk)]
    audio = np.concatenate([c.samples for c in chunks]).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        samples, rate = render(PASSAGE, Voice("en-us", 175), Path(tmp) / "passage.wav")
    return {"demo": (audio, script_text(None, demo) or ""),
            "passage": (to_16k(samples, rate), PASSAGE)}


def simulate(model, config, audio: np.ndarray, said: str) -> dict:
    """One real-time simulation (see the module doc)."""
    from realtime.extract.asr import StreamingASR
    from realtime.types import AudioChunk

    asr = StreamingASR(model, config)
    step = int(CHUNK_S * RATE_HZ)
    clock_s, delays, words = 0.0, [], []
    cpu0 = process_cpu_s()

    def take(update) -> None:
        nonlocal clock_s
        clock_s += update.compute_s  # the call's own measured VAD + Whisper time
        for w in update.committed:
            delays.append(clock_s - w.t1_s)
            words.append(w.text)

    for i in range(0, len(audio), step):
        piece = audio[i : i + step]
        t0 = i / RATE_HZ
        t1 = t0 + len(piece) / RATE_HZ
        asr.insert_audio_chunk(AudioChunk(t0, piece, RATE_HZ, t1))
        clock_s = max(clock_s, t1)
        take(asr.process_iter())
    take(asr.finish())
    d = np.asarray(delays) if delays else np.asarray([np.nan])
    return {"commit_s_p50": round(float(np.percentile(d, 50)), 3),
            "commit_s_p95": round(float(np.percentile(d, 95)), 3),
            "cpu_s_per_media_s": round((process_cpu_s() - cpu0) / (len(audio) / RATE_HZ), 4),
            "wer": round(wer(said, " ".join(words)), 4), "passes": asr.transcriptions,
            "words": " ".join(words)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from realtime.extract.asr import ASR_POLICIES, DEFAULT_ASR_POLICY

    p = argparse.ArgumentParser(prog="python -m benchmarks.asr_policies",
                                description=__doc__.split("\n")[0])
    p.add_argument("--policies", default=",".join(ASR_POLICIES),
                   help="named policies, comma-separated (default: all)")
    p.add_argument("--hops", default="",
                   help=f"more speech hops (s) of the default {DEFAULT_ASR_POLICY!r} policy")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", type=Path, default=RESULTS / "asr_policies.json")
    add_log_level(p)
    args = p.parse_args(argv)
    unknown = [x for x in args.policies.split(",") if x not in ASR_POLICIES]
    if unknown:
        p.error(f"unknown ASR policy {unknown[0]!r}: use one of {', '.join(ASR_POLICIES)}")
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    # the offline variables (before parse_args imports the ASR) and one BLAS thread, as a
    # session process; torch's threads and glibc's malloc as they come
    apply_process_settings(ProcessSettings(torch_threads=None, fix_malloc=False))
    args = parse_args(argv)
    configure_logging(args.log_level)
    from realtime.extract.asr import ASR_POLICIES, DEFAULT_ASR_POLICY, load_whisper

    variants = {name: ASR_POLICIES[name] for name in args.policies.split(",")}
    for hop in filter(None, args.hops.split(",")):
        variants[f"{DEFAULT_ASR_POLICY}@{float(hop):g}"] = replace(
            ASR_POLICIES[DEFAULT_ASR_POLICY], min_chunk_s=float(hop))
    model = load_whisper("tiny.en")
    material = clips()
    load_start = list(os.getloadavg())
    results: dict[str, dict[str, list[dict]]] = {}
    for name, config in variants.items():
        for clip, (audio, said) in material.items():
            simulate(model, config, audio, said)  # warm-up
            runs = [simulate(model, config, audio, said) for _ in range(args.repeats)]
            results.setdefault(name, {})[clip] = runs
            r = runs[-1]
            print(f"{name:12s} {clip:8s} commit p50 {r['commit_s_p50']:.2f} s  "
                  f"p95 {r['commit_s_p95']:.2f} s  CPU {r['cpu_s_per_media_s']:.3f}  "
                  f"WER {r['wer']:.3f}  passes {r['passes']}", flush=True)
    out = {"started": wall_time_iso(), "load_average_start": load_start,
           "load_average_end": list(os.getloadavg()), "cpu_count": os.cpu_count(),
           "chunk_s": CHUNK_S, "asr_model": "tiny.en",
           "clips": {k: round(len(a) / RATE_HZ, 2) for k, (a, _) in material.items()},
           "policies": {k: asdict(v) for k, v in variants.items()},
           "results": results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({"json": str(args.json)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
