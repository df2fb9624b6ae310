"""Which face-tracker and expression rates keep what a person sees: the bundled recording
replayed (`Pipeline.run_to_end`, as ``--fast``) with the face tracker and the expression
network at several rates (`realtime.extract.stages.Stages.with_rates`), each compared with
every frame tracked and classified (the file source's 10 frames a second).

    python -m benchmarks.face_rates [--rates 10:10,5:5,5:2.5] [--source FILE] [--json OUT]

A rate pair ``FACE:EXPRESSION`` is in classifications per second of media ("all": every
frame). Per pair (`compare`): the committed words equal or not; the largest and the mean
difference of the sentiment at the same tick; the run's mean smile, brow and jaw and their
largest per-tick difference (the dashboard's readings: means of the last second); the
face-present rate (ticks whose window has a face); the dominant expression of the run (the
largest mean probability) and the share of ticks whose dominant expression is the
reference's; the face and expression stages' compute (CPU seconds a media second, one
thread). Writes benchmarks/results/face_rates.json (or --json OUT).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import numpy as np

from models.env import add_log_level, configure_logging

log = logging.getLogger(__name__)
RESULTS = Path(__file__).resolve().parent / "results"
SIGNALS = ("smile", "brow", "jaw")


def parse_rates(text: str) -> list[tuple[float | None, float | None]]:
    """"10:10,5:2.5,all:5" -> [(10.0, 10.0), (5.0, 2.5), (None, 5.0)]; ValueError else."""
    def rate(x: str) -> float | None:
        x = x.strip()
        if x == "all":
            return None
        value = float(x)
        if value <= 0:
            raise ValueError(f"a rate must be positive or 'all', got {x!r}")
        return value

    pairs = []
    for item in text.split(","):
        face, sep, expression = item.partition(":")
        if not sep:
            raise ValueError(f"rates are FACE:EXPRESSION pairs, got {item!r}")
        pairs.append((rate(face), rate(expression)))
    return pairs


def replay(engine, path: Path) -> tuple[list, dict[str, float]]:
    """The predictions of one ``--fast`` replay and the face/expression CPU per media s."""
    from realtime.clock import ReplayClock
    from realtime.pipeline import Pipeline
    from realtime.sources.file import FileSource

    pipe = Pipeline(FileSource(path, realtime=False, clock=ReplayClock()), engine)
    pipe.run_to_end()
    history = pipe.store.history()
    media_s = max(history[-1].t_end_s, 1e-6) if history else 1e-6
    spent = pipe.stats.cpu()
    cpu = {stage: round(spent.get(stage, 0.0) / media_s, 4) for stage in ("face", "expression")}
    return history, cpu


def _committed(history: list) -> list[str]:
    return [w for p in history for w in p.new_words]


def _dominant(expression) -> int | None:
    return None if expression is None else int(np.argmax(expression))


def compare(history: list, reference: list) -> dict:
    """The figures of one run against the reference run (see the module doc)."""
    from models.expression import EXPRESSIONS

    ref = {round(p.t_end_s, 3): p for p in reference}
    pairs = [(p, ref[round(p.t_end_s, 3)]) for p in history if round(p.t_end_s, 3) in ref]
    sentiment = np.array([abs(a.sentiment - b.sentiment) for a, b in pairs])
    out: dict = {"words_equal": _committed(history) == _committed(reference),
                 "ticks": len(history), "ticks_matched": len(pairs),
                 "sentiment_abs_diff": {"max": round(float(sentiment.max()), 4),
                                        "mean": round(float(sentiment.mean()), 4)}}
    for name in SIGNALS:
        now = np.array([getattr(a.signals, name) for a, _ in pairs], np.float64)
        was = np.array([getattr(b.signals, name) for _, b in pairs], np.float64)
        both = ~np.isnan(now) & ~np.isnan(was)
        out[name] = {"mean": round(float(np.nanmean(now)), 4),
                     "reference_mean": round(float(np.nanmean(was)), 4),
                     "max_tick_diff": round(float(np.abs(now - was)[both].max()), 4)}
    out["face_present_rate"] = round(float(np.mean([p.face for p in history])), 4)
    out["reference_face_present_rate"] = round(float(np.mean([p.face for p in reference])), 4)
    rows = [p.expression for p in history if p.expression is not None]
    ref_rows = [p.expression for p in reference if p.expression is not None]
    out["dominant_expression"] = EXPRESSIONS[int(np.argmax(np.mean(rows, axis=0)))]
    out["reference_dominant_expression"] = EXPRESSIONS[int(np.argmax(np.mean(ref_rows, axis=0)))]
    both = [(_dominant(a.expression), _dominant(b.expression)) for a, b in pairs
            if a.expression is not None and b.expression is not None]
    out["ticks_same_dominant"] = round(float(np.mean([x == y for x, y in both])), 4)
    out["ticks_with_expression"] = len(rows)
    return out


def main(argv: list[str] | None = None) -> int:
    from realtime.assets import demo_recording
    from realtime.runtime import ProcessSettings, apply_process_settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="10:10,10:5,5:5,5:2.5,3.3:3.3",
                        help="FACE:EXPRESSION pairs (per second of media, or 'all')")
    parser.add_argument("--source", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=RESULTS / "face_rates.json")
    add_log_level(parser)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        pairs = parse_rates(args.rates)
    except ValueError as exc:
        parser.error(str(exc))
    apply_process_settings(ProcessSettings())
    from realtime.engine import Engine

    path = args.source or demo_recording()
    engine = Engine.load(None, device="cpu")
    reference, ref_cpu = replay(replace_rates(engine, None, None), path)
    runs = {}
    for face_hz, expression_hz in pairs:
        history, cpu = replay(replace_rates(engine, face_hz, expression_hz), path)
        key = f"{face_hz or 'all'}:{expression_hz or 'all'}"
        runs[key] = {**compare(history, reference), "cpu_s_per_media_s": cpu}
        log.warning("%s: %s", key, runs[key])
    result = {"source": str(path), "load_average": list(os.getloadavg()),
              "reference": "all:all", "reference_cpu_s_per_media_s": ref_cpu, "runs": runs}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


def replace_rates(engine, face_hz: float | None, expression_hz: float | None):
    """The engine with its sessions' face and expression stages at these rates."""
    from dataclasses import replace

    return replace(engine, stages=engine.stages.with_rates(face_hz, expression_hz))


if __name__ == "__main__":
    raise SystemExit(main())
