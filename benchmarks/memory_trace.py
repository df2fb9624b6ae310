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

    from realtime.clock import SessionClock
    from realtime.engine import Engine
    from realtime.pipeline import Pipeline
    from realtime.sources import FileSource

    engine = Engine.load(None)
    source = FileSource(args.source, realtime=True, clock=SessionClock(),
                        repeat_until_s=args.settle_s + args.seconds + 60.0)
    pipeline = Pipeline(source, engine)
    tracemalloc.start(25)
    pipeline.start()
    pause = threading.Event()
    pause.wait(args.settle_s)
    gc.collect()
    first, rss0 = tracemalloc.take_snapshot(), rss_mib()
    traced0 = tracemalloc.get_traced_memory()[0]
    pause.wait(args.seconds)
    gc.collect()
    second, rss1 = tracemalloc.take_snapshot(), rss_mib()
    traced1 = tracemalloc.get_traced_memory()[0]
    pipeline.stop()
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
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
