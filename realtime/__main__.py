"""Command line: run the live pipeline on a recording or on this machine's devices.

    python -m realtime --source PATH [--fast] --jsonl OUT     # a recording (any A/V file)
    python -m realtime --source PATH --loop [--seconds N]     # replayed again and again (soak)
    python -m realtime --camera 0 --mic default [--seconds N]  # live from devices
    python -m realtime --source A --source B [--fast] --jsonl-dir DIR   # several sessions
    (any of them with --log-level DEBUG|INFO|WARNING|ERROR; logs go to stderr)

Prints one short line per update; with --jsonl, writes one JSON object per prediction:
t (seconds from the source's start to the window end), sentiment, words (committed words
in the window), new_words (committed since the previous line), tentative, face, signals
(pitch_hz, energy_db, smile, brow, jaw; null when not measured), latency_ms (with "total"),
drops, model, expression (the 7 facial expression probabilities by name, averaged over
the last 0.5 s; null without a face), face_valence (P(happy) - P(angry, disgust, fear,
sad); null without a face), voice_arousal (heuristic, not validated: prosody z-scored
against this session's own baseline; null while the baseline warms up or in silence).
With --face-weight W (default: the personal model's fitted W, else 0), sentiment =
clip(model + W * face_valence) while a face is in view; otherwise it is exactly the model's.
--fast replays without real-time pacing, deterministically (a replay clock driven by the data).

Several --source (and/or devices) run as sessions of one process on one engine (the models
are loaded once); --jsonl-dir DIR writes DIR/<source name>.jsonl for each, with the same keys
as --jsonl, and at the end DIR/sessions.json (`sessions_json`): for each session its name,
source, node ("local": every session runs in this process), predictions, error and what it
had cut under load (degraded), with the run's started_at/ended_at (local wall time). With
--fast each session replays on its own clock and its file is identical to the one a
single-source --fast run of that source writes; live, the sessions' sentiment model
and word encoder run batched across sessions (`realtime.serving.executor.SharedModels`).

Exit status: 0 done; 1 the run failed part-way (the message says why); 2 nothing could
start (bad file, missing model, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from models.env import add_log_level, configure_logging
from models.expression import EXPRESSIONS
from realtime.clock import wall_time_iso
from realtime.runtime import ProcessSettings, apply_process_settings
from realtime.serving.backend import add_serve_arguments, check_serve_arguments
from realtime.types import Prediction

if TYPE_CHECKING:
    from realtime.pipeline import Pipeline
    from realtime.sources import Source, SourceSpec

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
        "expression": (None if p.expression is None else
                       {k: round(v, 4) for k, v in zip(EXPRESSIONS, p.expression, strict=True)}),
        "face_valence": _num(p.face_valence),
        "voice_arousal": _num(p.voice_arousal),
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
    src.add_argument("--source", type=Path, action="append",
                     help="a video or audio file to process (repeat for several sessions)")
    src.add_argument("--fast", action="store_true",
                     help="no real-time pacing: replay as fast as possible, deterministically")
    src.add_argument("--camera", help="camera index or path ('none' for no camera)")
    src.add_argument("--mic", help="microphone name or index ('default'; 'none' for no mic)")
    src.add_argument("--seconds", type=float, help="stop a live run after this many seconds")
    src.add_argument("--loop", action="store_true",
                     help="replay --source again and again, until --seconds or Ctrl-C")
    p.add_argument("--jsonl", type=Path, help="write one JSON object per prediction here")
    p.add_argument("--jsonl-dir", type=Path,
                   help="write each session's JSON lines to DIR/<source name>.jsonl")
    p.add_argument("--checkpoint", type=Path,
                   help="sentiment model folder (default: the bundled assets/model/)")
    p.add_argument("--asr-model", default="tiny.en", help="Whisper model: tiny.en or base")
    p.add_argument("--asr-policy", default="pause",
                   help="streaming ASR policy: pause (default) or agreement (the older, "
                        "LocalAgreement-2 only; see realtime/extract/asr.py)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--hop", type=float, default=0.2, help="seconds between updates")
    p.add_argument("--face-weight", type=float, default=None, metavar="W",
                   help="add W * face valence (in [-1, 1]) to the sentiment while a face is "
                        "in view (default: the W personal calibration fitted into the "
                        "--checkpoint model, else 0: the sentiment is the model's)")
    add_serve_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no live lines")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    add_log_level(p)
    args = p.parse_args(argv)
    live = args.camera is not None or args.mic is not None
    if args.source is None and not live:
        p.error("give --source PATH (repeat it for several sessions) and/or --camera/--mic")
    if args.face_weight is not None and not (math.isfinite(args.face_weight)
                                             and abs(args.face_weight) <= 6):
        p.error(f"--face-weight must be a number in [-6, 6], got {args.face_weight}")
    if args.fast and (args.source is None or live):
        p.error("--fast only applies to --source (recordings, not devices)")
    if args.jsonl and args.jsonl_dir:
        p.error("give --jsonl or --jsonl-dir, not both")
    if args.jsonl and len(args.source or ()) + live > 1:
        p.error("several sessions write one file each: use --jsonl-dir DIR")
    check_serve_arguments(p, args)
    if args.loop and args.source is None:
        p.error("--loop only applies to --source")
    if args.loop and args.fast and args.seconds is None:
        p.error("--loop with --fast needs --seconds (a fast endless replay never ends)")
    if args.seconds is not None and not args.seconds > 0:
        p.error("--seconds must be positive")
    return args


def source_specs(args: argparse.Namespace) -> list[tuple[str, SourceSpec]]:
    """What the arguments ask to capture from, one (session name, spec) per session: each
    --source by its file name, then the devices ('none'/'off' leaves a device out)."""
    from realtime.sources import SourceSpec

    repeat = (args.seconds or math.inf) if args.loop else None
    specs = [(path.stem, SourceSpec.file(path, paced=not args.fast, repeat_until_s=repeat))
             for path in args.source or ()]
    if args.camera is not None or args.mic is not None:
        off = ("none", "off")
        camera = None if args.camera is None or args.camera in off else (
            int(args.camera) if args.camera.isdigit() else args.camera)
        mic = None if args.mic is None or args.mic in off else args.mic
        specs.append(("devices", SourceSpec.devices(camera=camera, mic=mic)))
    return list(zip(unique_names([name for name, _ in specs]), [s for _, s in specs],
                    strict=True))


def unique_names(names: list[str]) -> list[str]:
    """``names`` made unique (compared case-insensitively), in order: the first of each
    keeps its name, a repeat becomes ``name-N`` with the smallest N >= 2 that is nobody's
    name, given or made: talk, talk, talk-2 -> talk, talk-3, talk-2."""
    taken = {n.casefold() for n in names}
    seen: set[str] = set()
    unique = []
    for name in names:
        chosen = name
        if name.casefold() in seen:
            n = 2
            while f"{name}-{n}".casefold() in taken:
                n += 1
            chosen = f"{name}-{n}"
            taken.add(chosen.casefold())
        seen.add(name.casefold())
        unique.append(chosen)
    return unique


def check_outputs(args: argparse.Namespace) -> str | None:
    """Why --jsonl or --jsonl-dir cannot be written (None when they can), found before any
    model loads: --jsonl-dir is created (with its parents) and must take a new file;
    --jsonl must not be a folder, and its folder must exist and take a new file. Probes by
    creating and deleting a temporary file there (permission bits say little to root)."""
    if args.jsonl_dir is not None:
        folder = args.jsonl_dir
        if folder.exists() and not folder.is_dir():
            return f"--jsonl-dir {folder}: exists and is not a folder"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"--jsonl-dir {folder}: cannot create the folder ({exc.strerror or exc})"
        return _writable(folder, "--jsonl-dir")
    if args.jsonl is not None:
        if args.jsonl.is_dir():
            return f"--jsonl {args.jsonl}: is a folder, not a file"
        folder = args.jsonl.parent
        if not folder.is_dir():
            return f"--jsonl {args.jsonl}: the folder {folder} does not exist"
        if args.jsonl.exists() and not os.access(args.jsonl, os.W_OK):
            return f"--jsonl {args.jsonl}: the file is not writable"
        return _writable(folder, "--jsonl")
    return None


def _writable(folder: Path, option: str) -> str | None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as exc:
        return f"{option}: cannot write in {folder} ({exc.strerror or exc})"


@dataclass
class _Session:
    """One source's run: its registry id and pipeline, where its lines go, how many it
    wrote."""

    name: str
    source: Source
    jsonl: TextIO | None
    prefix: str
    kind: str = "file"
    origin: str = ""  # what sessions.json calls its source: the path given, or the devices
    id: str = ""
    pipeline: Pipeline | None = None
    count: int = 0

    def publish(self, p: Prediction, out: TextIO, quiet: bool) -> None:
        self.count += 1
        origin = self.source.started_at_s
        if self.jsonl is not None:
            self.jsonl.write(json.dumps(prediction_json(p, origin)) + "\n")
            self.jsonl.flush()
        if not quiet:
            print(self.prefix + live_line(p, origin), file=out, flush=True)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from realtime.sources import SourceError, make_source

    problem = check_outputs(args)  # before any file is probed or model loaded
    if problem is not None:
        print(f"error: {problem}", file=err)
        return 2
    started_at = wall_time_iso()

    sessions: list[_Session] = []
    try:
        specs = source_specs(args)
        for name, spec in specs:  # bad files fail here, before any model loads
            source = make_source(spec)
            sessions.append(_Session(name, source, None,
                                     f"[{name}] " if len(specs) > 1 else "",
                                     kind=spec.kind,
                                     origin=str(spec.path) if spec.path else source.name))
    except (FileNotFoundError, SourceError, ValueError) as exc:
        print(f"error: {exc}", file=err)
        return 2

    from realtime.engine import EngineError
    from realtime.runtime import Runtime, RuntimeConfig
    from realtime.serving.backend import ServingError

    # several live sessions share batched models (or the Ray deployment, with --serve ray);
    # --fast replays call the engine or the deployment one window at a time (deterministic)
    config = RuntimeConfig(
        checkpoint_dir=args.checkpoint, asr_model=args.asr_model, asr_policy=args.asr_policy,
        device=args.device, face_weight=args.face_weight, serve=args.serve,
        ray_address=args.ray_address, ray_connect_timeout_s=args.ray_connect_timeout_s,
        shared_models=len(sessions) > 1 and not args.fast,
        max_sessions=len(sessions), hop_s=args.hop)
    try:
        runtime = Runtime.open(config)
    except (EngineError, ServingError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    if args.jsonl_dir is not None:
        args.jsonl_dir.mkdir(parents=True, exist_ok=True)
    registry = runtime.sessions
    try:
        for s in sessions:
            path = args.jsonl or (args.jsonl_dir / f"{s.name}.jsonl" if args.jsonl_dir else None)
            s.jsonl = path.open("w") if path is not None else None
        if args.fast:
            for s in sessions:
                s.id = registry.create(s.source, start=False,
                                       on_prediction=lambda p, s=s: s.publish(p, out, args.quiet))
                s.pipeline = registry.pipeline(s.id)
            _replay_all(sessions)
        else:
            try:
                for s in sessions:
                    s.id = registry.create(
                        s.source, source_kind=s.kind,
                        on_prediction=lambda p, s=s: s.publish(p, out, args.quiet))
                    s.pipeline = registry.pipeline(s.id)
            except SourceError as exc:
                print(f"error: {exc}", file=err)
                return 2
            try:
                for s in sessions:
                    s.pipeline.wait(args.seconds)
            except KeyboardInterrupt:
                print("stopping...", file=err)
            for s in sessions:
                if not registry.stop(s.id):
                    print(f"{s.prefix}warning: the pipeline did not stop within 2 s; devices "
                          "are released when its threads end", file=err)
    finally:
        for s in sessions:
            if s.jsonl is not None:
                s.jsonl.close()
        runtime.close()
        if args.jsonl_dir is not None:
            write_sessions_json(args.jsonl_dir / SESSIONS_JSON,
                                sessions_json(sessions, started_at, wall_time_iso()))
    return max(_summary(s, err, args.debug) for s in sessions)


SESSIONS_JSON = "sessions.json"


def sessions_json(sessions: list[_Session], started_at: str, ended_at: str) -> dict:
    """What --jsonl-dir's sessions.json holds: per session its name, source (the file, or the
    devices), node ("local"), predictions written, error (None when it ran to its end; the
    plain message, paths included: the person running the command owns these sources and
    files, unlike the operator's health table, which `scrub_error` serves) and degraded (what
    it had cut under load when it ended, None when nothing). A session that never started
    has error "not started"."""
    rows = []
    for s in sessions:
        status = s.pipeline.status() if s.pipeline is not None else None
        rows.append({"name": s.name, "source": s.origin, "node": "local",
                     "predictions": s.count,
                     "error": "not started" if status is None else status.error,
                     "degraded": None if status is None else status.degraded})
    return {"started_at": started_at, "ended_at": ended_at, "sessions": rows}


def write_sessions_json(path: Path, doc: dict) -> None:
    """Writes ``doc`` to ``path`` atomically (a temporary file in the same folder, then a
    rename): a reader sees the old file or the whole new one, never half."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".sessions-",
                                     suffix=".tmp", delete=False) as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(f.name, path)


def _replay_all(sessions: list[_Session]) -> None:
    """Each session replays in its own thread (one session: in this one); an error in one
    is recorded in its pipeline and never stops the others."""
    if len(sessions) == 1:
        sessions[0].pipeline.run_to_end()
        return

    def replay(s: _Session) -> None:
        try:
            s.pipeline.run_to_end()
        except Exception:  # noqa: BLE001 - recorded in the pipeline's status
            log.debug("%s: replay failed", s.name, exc_info=True)

    threads = [threading.Thread(target=replay, args=(s,), name=f"replay:{s.name}")
               for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _summary(s: _Session, err: TextIO, debug: bool) -> int:
    """Prints the session's summary line (and its error); returns its exit status."""
    status = s.pipeline.status()
    print(f"{s.prefix}{s.count} predictions from {s.source.name}; drops: "
          f"{', '.join(f'{k}={v}' for k, v in status.drops.items() if v) or 'none'}",
          file=err)
    if status.error:
        if debug and s.pipeline.error_detail:
            print(s.pipeline.error_detail, file=err)
        kind = "warning" if s.count and s.source.error == status.error else "error"
        print(f"{s.prefix}{kind}: {status.error}", file=err)
        return 0 if kind == "warning" else 1
    return 0


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    apply_process_settings(ProcessSettings(device=args.device))
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
