"""Benchmark of the facial expression stage on CPU: one face (crop + network) and the whole
face extractor per frame, with and without the expression model.

    python -m benchmarks.expression [--frames 60] [--repeats 100] [--threads 1]
                                    [--json OUT] [--log-level INFO]

On real frames of the bundled recording (`realtime.assets.demo_recording`, the astronaut
face, every other frame): times

* ``crop_ms``: `realtime.extract.expression.face_crop` of one face from a frame (a face box
  a third of the frame's height, as in the recording);
* ``network_ms``: the mini-Xception on one 64x64 crop (`models.expression.MiniXception.
  classify`, batch 1), as loaded (batch norms folded into the convolutions,
  `models.expression.fuse_batch_norm`) and unfused, with the largest difference of their
  outputs on the recording's crops;
* ``frame_ms``: `realtime.extract.face.FaceExtractor` per frame alone, and feeding the
  `realtime.extract.expression.ExpressionExtractor` (mediapipe + crop + network).

Medians (with min and p90; on a busy machine the min is the steadier figure) of per-call
times with ``--threads`` torch threads (the engine uses 1).
Writes benchmarks/results/expression_cpu.json (or --json OUT) with the machine's load
average beside the figures, since other work may run beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from models.env import add_log_level, configure_logging

log = logging.getLogger(__name__)
RESULTS = Path(__file__).resolve().parent / "results"


def _times_ms(call: Callable[[], object], repeats: int, warmup: int = 5) -> np.ndarray:
    from realtime.clock import perf_s

    for _ in range(warmup):
        call()
    out = np.empty(repeats)
    for i in range(repeats):
        start = perf_s()
        call()
        out[i] = (perf_s() - start) * 1000.0
    return out


def _summary(ms: np.ndarray) -> dict[str, float]:
    return {"median": round(float(np.median(ms)), 3), "min": round(float(np.min(ms)), 3),
            "p90": round(float(np.percentile(ms, 90)), 3), "n": int(len(ms))}


def recording_frames(n: int) -> list[np.ndarray]:
    """The first ``n`` of every other frame of the bundled recording (RGB uint8)."""
    from realtime.assets import demo_recording
    from scripts.make_demo_recording import decode_frames

    frames = []
    for _, image in decode_frames(demo_recording(), every=2):
        frames.append(image.copy())
        if len(frames) == n:
            break
    return frames


class _KeepCrops:
    """A crop sink that keeps each face crop and passes it on to ``sink``."""

    def __init__(self, sink) -> None:
        self.sink, self.crops = sink, []

    def wants_crop(self, t_s: float) -> bool:
        return self.sink.wants_crop(t_s)

    def insert_crop(self, crop) -> None:
        if crop.grey is not None:
            self.crops.append(crop.grey)
        self.sink.insert_crop(crop)


def _per_frame_ms(frames: list[np.ndarray], with_expression: bool,
                  classifier) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per-frame ms of the face extractor (feeding the expression extractor when asked);
    the face crops it made."""
    from realtime.clock import perf_s
    from realtime.extract.expression import ExpressionExtractor
    from realtime.extract.face import FaceExtractor
    from realtime.types import VideoFrame

    expression = ExpressionExtractor(classifier) if with_expression else None
    sink = _KeepCrops(expression) if expression is not None else None
    ms = np.empty(len(frames))
    with FaceExtractor(crops=sink) as face:
        for i, image in enumerate(frames):
            frame = VideoFrame(i / 10.0, image, i / 10.0)
            start = perf_s()
            face.insert_frame(frame)
            face.process_iter()
            if expression is not None:
                expression.process_iter()
            ms[i] = (perf_s() - start) * 1000.0
    return ms, (sink.crops if sink is not None else [])


def run(frames_n: int, repeats: int, threads: int) -> dict:
    from models import expression as E
    from realtime.assets import expression_model_path
    from realtime.extract.expression import face_crop

    torch.set_num_threads(threads)
    path = expression_model_path()
    fused, unfused = E.load(path), E.load(path, fuse=False)
    frames = recording_frames(frames_n)
    h, w = frames[0].shape[:2]
    side = h / 3.0
    cx, cy = w / 2.0, h / 2.0
    corners = np.array([[cx - side / 2, cy - side / 2], [cx + side / 2, cy + side / 2]])
    corners_norm = corners / (w, h)
    k = iter(range(10**9))
    crop_ms = _times_ms(lambda: face_crop(frames[next(k) % len(frames)], corners_norm),
                        repeats)
    alone_ms, _ = _per_frame_ms(frames, False, fused)
    with_ms, crops = _per_frame_ms(frames, True, fused)
    if not crops:
        raise SystemExit("benchmarks.expression: no face found in the recording's frames")
    batch = np.stack(crops)
    happy = E.EXPRESSIONS.index("happy")
    probs = fused.classify(batch)
    diff = float(np.abs(probs - unfused.classify(batch)).max())
    network = {}
    for name, net in (("fused", fused), ("unfused", unfused)):
        j = iter(range(10**9))
        network[name] = _summary(_times_ms(
            lambda net=net, j=j: net.classify(batch[next(j) % len(batch)][None]), repeats))
    return {
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": threads,
                    "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()]},
        "frames": len(frames), "frame_size": [int(w), int(h)], "faces": len(crops),
        "crop_ms": _summary(crop_ms),
        "network_ms": network,
        "fused_vs_unfused_max_abs_diff": diff,
        "face_ms": {"crop_plus_network": round(
            float(np.median(crop_ms)) + network["fused"]["median"], 3)},
        "frame_ms": {"face_extractor_alone": _summary(alone_ms),
                     "with_expression": _summary(with_ms),
                     "expression_added_median": round(
                         float(np.median(with_ms) - np.median(alone_ms)), 3)},
        "recording_happy_share": round(float(np.mean(probs.argmax(1) == happy)), 3),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=60, help="recording frames (default 60)")
    p.add_argument("--repeats", type=int, default=100, help="timed calls per figure")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", type=Path, default=RESULTS / "expression_cpu.json")
    a = add_log_level(p).parse_args(argv)
    configure_logging(a.log_level)
    if a.frames < 1 or a.repeats < 1 or a.threads < 1:
        p.error("--frames, --repeats and --threads must be at least 1")
    result = run(a.frames, a.repeats, a.threads)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(result, indent=2) + "\n")
    net = result["network_ms"]
    print(f"one face: crop {result['crop_ms']['median']:.2f} ms + network "
          f"{net['fused']['median']:.2f} ms, min {net['fused']['min']:.2f} (unfused "
          f"{net['unfused']['median']:.2f} ms, min {net['unfused']['min']:.2f}; "
          f"max diff {result['fused_vs_unfused_max_abs_diff']:.1e}); per frame: face "
          f"extractor {result['frame_ms']['face_extractor_alone']['median']:.1f} ms alone, "
          f"{result['frame_ms']['with_expression']['median']:.1f} ms with the expression; "
          f"load {result['machine']['load_avg_1_5_15']}; wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
