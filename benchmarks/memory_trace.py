"""Where does the soak's memory go? Python allocations (tracemalloc) against RSS.

    python -m benchmarks.memory_trace [--source assets/demo.mp4] [--settle-s 45] [--seconds 150]
                                      [--top 8] [--json OUT]

Replays the source at real speed through the live pipeline with the bundled model, takes a
tracemalloc snapshot and the RSS after ``--settle-s``, again ``--seconds`` later, and prints
(and with ``--json`` writes) both growths and the ``--top`` allocation sites that grew. When
RSS grows and the traced Python memory does not, the growth is in native code (Whisper's
CTranslate2, onnxruntime, mediapipe, torch), not in Python objects.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import threading
import tracemalloc
from pathlib import Path

from benchmarks.memory import rss_mib
from models.env import add_log_level, configure_logging
from realtime.runtime import apply_process_settings

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory_trace",
                                description=__doc__.split("\n")[0])
    p.add_argument("--source", type=Path, default=Path("assets/demo.mp4"))
    p.add_argument("--settle-s", type=float, default=45.0)
    p.add_argument("--seconds", type=float, default=150.0)
    p.add_argument("--top", type=int, default=8)
    p.add_argument("--json", type=Path)
    args = add_log_level(p).parse_args(argv)
    configure_logging(args.log_level)
    apply_process_settings()

    from realtime.runtime import Runtime

    with Runtime.open() as runtime:
        result = trace(runtime, args)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def trace(runtime, args: argparse.Namespace) -> dict:
    """One session of ``args.source`` at real speed in ``runtime``'s registry, traced (see the
    module doc); returns the figures (JSON-ready)."""
    from realtime.clock import SessionClock
    from realtime.sources import FileSource

    source = FileSource(args.source, realtime=True, clock=SessionClock(),
                        repeat_until_s=args.settle_s + args.seconds + 60.0)
    tracemalloc.start(25)
    session_id = runtime.sessions.create(source)
    pause = threading.Event()
    pause.wait(args.settle_s)
    gc.collect()
    first, rss0 = tracemalloc.take_snapshot(), rss_mib()
    traced0 = tracemalloc.get_traced_memory()[0]
    pause.wait(args.seconds)
    gc.collect()
    second, rss1 = tracemalloc.take_snapshot(), rss_mib()
    traced1 = tracemalloc.get_traced_memory()[0]
    runtime.sessions.stop(session_id)
    sites = [{"mib": round(s.size_diff / 2**20, 3), "blocks": s.count_diff,
              "where": s.traceback.format()[-2:]}
             for s in second.compare_to(first, "traceback")[: args.top]]
    result = {"source": str(args.source), "settle_s": args.settle_s, "seconds": args.seconds,
              "rss_mib": [round(rss0, 1), round(rss1, 1)],
              "rss_growth_mib_per_min": round((rss1 - rss0) / (args.seconds / 60.0), 2),
              "python_traced_mib": [round(traced0 / 2**20, 2), round(traced1 / 2**20, 2)],
              "python_growth_mib_per_min": round(
                  (traced1 - traced0) / 2**20 / (args.seconds / 60.0), 3),
              "top_python_growth": sites}
    return result


if __name__ == "__main__":
    sys.exit(main())
