"""Whisper for many sessions: K concurrent transcriptions batched on one executor against the
same K calls made one by one, in the same run.

    python -m benchmarks.whisper_batch [--k 1,2,4,8] [--rounds 5] [--device cpu|cuda]
                                       [--cpu-threads 1] [--json OUT]

The clips are cut from the bundled recording (assets/demo.mp4, its script
assets/demo_script.txt): clip i starts 0.2 s before sentence i and lasts 3.0-5.8 s (a
streaming buffer: a sentence and the start of the next), prompted (``prompt``: the sentence
before it, as a session's committed text) or not (``none``). For each K, the K clips are
transcribed by K threads at once, ``--rounds`` times, alternating the two modes so that a
change in the machine's load hits both:

* ``one_by_one``: each thread calls the loaded Whisper itself (`WhisperTranscriber`, the
  path of a single session; CTranslate2 runs concurrent calls one after the other);
* ``batched``: each thread calls a `realtime.serving.executor.SharedTranscriber`, whose one
  thread runs the queued calls together (`realtime.extract.whisper_batch.WhisperBatch`);
* ``batched_cut`` (prompted clips only): the same with every prompt cut to its last
  ``--cut-tokens`` tokens, so that the prompts share a length and a decoder call (the words
  may then differ from the full-prompt single call: the share that agree is reported).

Reported per K, prompt kind and mode: wall seconds per round, calls and media seconds per
wall second, process CPU seconds per call, the executor's mean batch, its encoder and decoder
calls per batch, the share of answers with the single call's words, and the ratios to one by
one. Results: benchmarks/results/whisper_batch_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.env import add_log_level, configure_logging
from realtime.assets import demo_recording
from realtime.clock import perf_s, wall_time_iso
from realtime.runtime import ProcessSettings, apply_process_settings
from realtime.sources.audio import RATE_HZ
from realtime.stats import process_cpu_s

log = logging.getLogger(__name__)

RESULTS = Path(__file__).resolve().parent / "results"


def clips(recording: Path, count: int) -> list[tuple[np.ndarray, str]]:
    """``count`` clips of 3.0-5.8 s from the recording, each with the sentence before it as
    its prompt (the first: the last sentence)."""
    from faster_whisper import decode_audio

    from scripts.make_demo_recording import parse_script

    lines = parse_script(recording.with_name(f"{recording.stem}_script.txt").read_text())
    audio = decode_audio(str(recording), sampling_rate=RATE_HZ)
    out = []
    for i in range(count):
        line = lines[i % len(lines)]
        start = int(max(0.0, line.start_s - 0.2) * RATE_HZ)
        seconds = 3.0 + (0.4 * i) % 3.0
        out.append((np.ascontiguousarray(audio[start : start + int(seconds * RATE_HZ)]),
                    lines[i % len(lines) - 1].text))
    return out


def _round(call: Callable[[int], object], k: int) -> tuple[float, float, list]:
    """K threads call at once; (wall s, process CPU s, answers in clip order)."""
    answers: list = [None] * k

    def run(i: int) -> None:
        answers[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(k)]
    t0, c0 = perf_s(), process_cpu_s()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return perf_s() - t0, process_cpu_s() - c0, answers


def _words(segments) -> list[str]:
    return [w.text for s in segments for w in s.words]


def measure_k(whisper, data: list[tuple[np.ndarray, str]], k: int, prompted: bool,
              rounds: int, min_window_s: float, cut_tokens: int) -> dict:
    """The modes for the first K clips (see the module doc)."""
    from realtime.extract.whisper_batch import WhisperBatch
    from realtime.serving.executor import ASR_BATCH, SharedTranscriber

    prompts = [text if prompted else None for _, text in data]
    runners = {"batched": WhisperBatch(whisper.model)}
    if prompted:
        runners["batched_cut"] = WhisperBatch(whisper.model, prompt_tokens=cut_tokens)
    shared = {mode: SharedTranscriber(r.run, ASR_BATCH).start() for mode, r in runners.items()}

    def single(i: int) -> object:
        return whisper.transcribe(data[i][0], prompt=prompts[i], beam_size=1,
                                  min_window_s=min_window_s)

    def batched(mode: str) -> Callable[[int], object]:
        return lambda i: shared[mode].transcribe(data[i][0], prompt=prompts[i], beam_size=1,
                                                 min_window_s=min_window_s)

    single(0)  # warm
    times: dict[str, list[tuple[float, float]]] = {"one_by_one": [], **{m: [] for m in shared}}
    same = {mode: 0 for mode in shared}
    try:
        for _ in range(rounds):
            w, c, alone = _round(single, k)
            times["one_by_one"].append((w, c))
            for mode in shared:
                w, c, together = _round(batched(mode), k)
                times[mode].append((w, c))
                same[mode] += sum(_words(a) == _words(b)
                                  for a, b in zip(alone, together, strict=True))
        stats = {mode: s.executor.stats() for mode, s in shared.items()}
    finally:
        for s in shared.values():
            s.stop()
    media_s = sum(len(data[i][0]) for i in range(k)) / RATE_HZ
    row: dict = {}
    for mode, values in times.items():
        wall = float(np.median([v[0] for v in values]))
        cpu = float(np.median([v[1] for v in values]))
        row[mode] = {"wall_s_per_round": round(wall, 3), "calls_per_s": round(k / wall, 2),
                     "media_s_per_s": round(media_s / wall, 2),
                     "cpu_s_per_call": round(cpu / k, 3)}
    for mode, st in stats.items():
        row[mode].update({
            "mean_batch": round(st.mean_batch, 2), "max_batch": st.max_batch,
            "encoder_calls_per_batch": round(runners[mode].encoder_calls
                                             / max(st.batches, 1), 2),
            "decoder_calls_per_batch": round(runners[mode].decoder_calls
                                             / max(st.batches, 1), 2),
            "share_with_the_single_calls_words": round(same[mode] / (k * rounds), 3),
            "speedup_wall": round(row["one_by_one"]["wall_s_per_round"]
                                  / row[mode]["wall_s_per_round"], 2),
            "cpu_per_call_ratio": round(row[mode]["cpu_s_per_call"]
                                        / row["one_by_one"]["cpu_s_per_call"], 2)})
    row["clip_s"] = [round(len(data[i][0]) / RATE_HZ, 1) for i in range(k)]
    return row


def measure(whisper, ks: list[int], rounds: int, min_window_s: float,
            cut_tokens: int) -> dict:
    data = clips(demo_recording(), max(ks))
    out: dict = {}
    for prompted in (False, True):
        kind = "prompt" if prompted else "none"
        for k in ks:
            row = measure_k(whisper, data, k, prompted, rounds, min_window_s, cut_tokens)
            out.setdefault(kind, {})[str(k)] = row
            log.info("prompts %s, K=%d: %s", kind, k, row)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.whisper_batch",
                                description=__doc__.split("\n")[0])
    p.add_argument("--k", default="1,2,4,8", help="comma-separated numbers of concurrent calls")
    p.add_argument("--rounds", type=int, default=5, help="rounds per K and mode (median)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--cpu-threads", type=int, default=1,
                   help="CTranslate2 threads on CPU (1, as the engine loads it)")
    p.add_argument("--model", default="tiny.en")
    p.add_argument("--min-window-s", type=float, default=6.0,
                   help="the encoder window of the streaming policies")
    p.add_argument("--cut-tokens", type=int, default=16,
                   help="batched_cut: prompts cut to their last N tokens (WhisperBatch "
                        "prompt_tokens), so that equally long prompts share a decoder call")
    p.add_argument("--json", type=Path,
                   help="default: benchmarks/results/whisper_batch_<device>.json")
    add_log_level(p)
    args = p.parse_args(argv)
    configure_logging(args.log_level)
    # the offline variables only: threads and malloc as they come (it measures Whisper's own)
    apply_process_settings(ProcessSettings(torch_threads=None, blas_threads=None,
                                           fix_malloc=False))
    from realtime.extract.asr import load_whisper

    load_start = list(os.getloadavg())
    started = wall_time_iso()
    whisper = load_whisper(args.model, args.device, args.cpu_threads)
    results = measure(whisper, [int(k) for k in args.k.split(",")], args.rounds,
                      args.min_window_s, args.cut_tokens)
    out = {"device": f"{platform.machine()}, {os.cpu_count()} cores" if args.device == "cpu"
           else args.device, "device_kind": args.device, "model": args.model,
           "cpu_threads": args.cpu_threads, "min_window_s": args.min_window_s,
           "cut_tokens": args.cut_tokens,
           "rounds": args.rounds, "started": started, "load_average_start": load_start,
           "load_average_end": list(os.getloadavg()), "results": results}
    path = args.json or RESULTS / f"whisper_batch_{args.device}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
