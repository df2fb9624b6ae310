"""Command line: run the live pipeline on a recording or on this machine's devices.

    python -m realtime --source PATH [--fast] --jsonl OUT     # a recording (any A/V file)
    python -m realtime --source PATH --loop [--seconds N]     # replayed again and again (soak)
    python -m realtime --camera 0 --mic default [--seconds N]  # live from devices
    (any of them with --log-level DEBUG|INFO|WARNING|ERROR; logs go to stderr)

Prints one short line per update; with --jsonl, writes one JSON object per prediction:
t (seconds from the source's start to the window end), sentiment, words (committed words
in the window), new_words (committed since the previous line), tentative, face, signals
(pitch_hz, energy_db, smile, brow, jaw; null when not measured), latency_ms (with "total"),
drops, model. --fast replays without real-time pacing, deterministically (a replay clock
driven by the data).

Exit status: 0 done; 1 the run failed part-way (the message says why); 2 nothing could
start (bad file, missing model, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from models.env import add_log_level, apply_offline_env, configure_logging
from realtime.types import Prediction

if TYPE_CHECKING:
    from realtime.sources import SourceSpec

log = logging.getLogger(__name__)


def prediction_json(p: Prediction, origin_s: float) -> dict:
    s = p.signals
    return {
        "t": round(p.t_end_s - origin_s, 3),
        "sentiment": round(p.sentiment, 4),
        "words": list(p.words),
        "new_words": list(p.new_words),
        "tentative": list(p.tentative),
        "face": bool(p.face),
        "signals": {k: _num(v) for k, v in (("pitch_hz", s.pitch_hz), ("energy_db", s.energy_db),
                                            ("smile", s.smile), ("brow", s.brow),
                                            ("jaw", s.jaw))},
        "latency_ms": {k: round(v, 1) for k, v in p.latency_ms.items() if math.isfinite(v)},
        "drops": dict(p.drops),
        "model": p.model_name,
    }


def live_line(p: Prediction, origin_s: float) -> str:
    s = p.signals
    words = " ".join(p.words[-6:])
    tail = f" [{' '.join(p.tentative)}]" if p.tentative else ""
    return (f"{p.t_end_s - origin_s:7.1f}s  sentiment {p.sentiment:+.2f}  "
            f"face {'yes' if p.face else 'no '}  pitch {_fmt(s.pitch_hz, '3.0f')} Hz  "
            f"energy {_fmt(s.energy_db, '4.0f')} dB  smile {_fmt(s.smile, '.2f')}  "
            f"{p.latency_ms['total']:5.0f} ms | {words}{tail}")


def _num(x: float) -> float | None:
    return round(float(x), 4) if math.isfinite(x) else None


def _fmt(x: float, spec: str) -> str:
    return format(x, spec) if math.isfinite(x) else "-"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m realtime", description=__doc__.split("\n")[0])
    src = p.add_argument_group("source (a recording, or devices)")
    src.add_argument("--source", type=Path, help="a video or audio file to process")
    src.add_argument("--fast", action="store_true",
                     help="no real-time pacing: replay as fast as possible, deterministically")
    src.add_argument("--camera", help="camera index or path ('none' for no camera)")
    src.add_argument("--mic", help="microphone name or index ('default'; 'none' for no mic)")
    src.add_argument("--seconds", type=float, help="stop a live run after this many seconds")
    src.add_argument("--loop", action="store_true",
                     help="replay --source again and again, until --seconds or Ctrl-C")
    p.add_argument("--jsonl", type=Path, help="write one JSON object per prediction here")
    p.add_argument("--checkpoint", type=Path,
                   help="sentiment model folder (default: the bundled assets/model/)")
    p.add_argument("--asr-model", default="tiny.en", help="Whisper model: tiny.en or base")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--hop", type=float, default=0.2, help="seconds between updates")
    p.add_argument("--quiet", action="store_true", help="no live lines")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    add_log_level(p)
    args = p.parse_args(argv)
    live = args.camera is not None or args.mic is not None
    if (args.source is None) == (not live):
        p.error("give either --source PATH or --camera/--mic")
    if args.fast and args.source is None:
        p.error("--fast only applies to --source")
    if args.loop and args.source is None:
        p.error("--loop only applies to --source")
    if args.loop and args.fast and args.seconds is None:
        p.error("--loop with --fast needs --seconds (a fast endless replay never ends)")
    if args.seconds is not None and not args.seconds > 0:
        p.error("--seconds must be positive")
    return args


def source_spec(args: argparse.Namespace) -> SourceSpec:
    """What the arguments ask to capture from ('none'/'off' leaves a device out)."""
    from realtime.sources import SourceSpec

    if args.source is not None:
        repeat = (args.seconds or math.inf) if args.loop else None
        return SourceSpec.file(args.source, paced=not args.fast, repeat_until_s=repeat)
    off = ("none", "off")
    camera = None if args.camera is None or args.camera in off else (
        int(args.camera) if args.camera.isdigit() else args.camera)
    mic = None if args.mic is None or args.mic in off else args.mic
    return SourceSpec.devices(camera=camera, mic=mic)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from realtime.sources import SourceError, make_source

    try:
        source = make_source(source_spec(args))  # bad files fail here, before any model loads
    except (FileNotFoundError, SourceError, ValueError) as exc:
        print(f"error: {exc}", file=err)
        return 2

    from realtime.engine import Engine, EngineError
    from realtime.pipeline import Pipeline

    try:
        engine = Engine.load(args.checkpoint, asr_model=args.asr_model, device=args.device)
    except EngineError as exc:
        print(f"error: {exc}", file=err)
        return 2

    jsonl = args.jsonl.open("w") if args.jsonl else None
    count = 0

    def publish(p: Prediction) -> None:
        nonlocal count
        count += 1
        origin = source.started_at_s
        if jsonl is not None:
            jsonl.write(json.dumps(prediction_json(p, origin)) + "\n")
            jsonl.flush()
        if not args.quiet:
            print(live_line(p, origin), file=out, flush=True)

    pipeline = Pipeline(source, engine, hop_s=args.hop, on_prediction=publish)
    try:
        if args.fast:
            pipeline.run_to_end()
        else:
            try:
                pipeline.start()
            except SourceError as exc:
                print(f"error: {exc}", file=err)
                return 2
            try:
                pipeline.wait(args.seconds)
            except KeyboardInterrupt:
                print("stopping...", file=err)
            if not pipeline.stop():
                print("warning: the pipeline did not stop within 2 s; devices are released "
                      "when its threads end", file=err)
    finally:
        if jsonl is not None:
            jsonl.close()
    status = pipeline.status()
    print(f"{count} predictions from {source.name}; drops: "
          f"{', '.join(f'{k}={v}' for k, v in status.drops.items() if v) or 'none'}",
          file=err)
    if status.error:
        if args.debug and pipeline.error_detail:
            print(pipeline.error_detail, file=err)
        kind = "warning" if count and source.error == status.error else "error"
        print(f"{kind}: {status.error}", file=err)
        return 0 if kind == "warning" else 1
    return 0


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    apply_offline_env()
    try:
        return run(args, out, err)
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return 1
    except Exception as exc:  # noqa: BLE001 - a user gets a message, not a traceback
        if args.debug:
            raise
        log.debug("unexpected failure", exc_info=True)
        print(f"error: unexpected failure: {type(exc).__name__}: {exc} "
              "(run again with --debug for details)", file=err)
        return 1


if __name__ == "__main__":
    sys.exit(main())
