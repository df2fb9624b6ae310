"""Evaluate a checkpoint on a dataset's test split.

    python -m models.evaluate --checkpoint runs/mmlatch-0 --data mosi-utt

The LAST stdout line is the test metrics as one JSON object (keys: models.metrics.KEYS).
"""

from __future__ import annotations

import argparse
import json

import torch

from models import checkpoint
from models.base import check_dims
from models.data.mosi import WORD_SOURCES
from models.data.registry import DATASETS, load_dataset
from models.env import add_log_level, configure_logging
from models.training.train import evaluate_split


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m models.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="folder with model.safetensors + "
                   "config.json")
    p.add_argument("--data", required=True, choices=DATASETS)
    p.add_argument("--split", default="test", choices=("train", "valid", "test"))
    p.add_argument("--mosi-dir", default=None)
    p.add_argument("--seed", type=int, default=0, help="generator seed (synthetic only)")
    p.add_argument("--words", default="timestamped", choices=WORD_SOURCES,
                   help="mosi-text word source (see models.training.train)")
    p.add_argument("--threads", type=int, default=1)
    args = add_log_level(p).parse_args(argv)
    configure_logging(args.log_level)
    torch.set_num_threads(args.threads)
    model = checkpoint.load(args.checkpoint)
    dims = model.config.dims
    bundle = load_dataset(args.data, mosi_dir=args.mosi_dir, seed=args.seed,
                          absent_dim=dims.audio if dims.audio == dims.video else 1,
                          words=args.words)
    check_dims(dims, bundle.dims, f"checkpoint {args.checkpoint}")
    if model.config.per_step != bundle.per_step:
        raise SystemExit(f"{args.checkpoint} was built with per_step="
                         f"{model.config.per_step} but {args.data} is "
                         f"{'per-step' if bundle.per_step else 'sequence-level'}")
    split = {"train": bundle.train, "valid": bundle.valid, "test": bundle.test}[args.split]
    metrics, _ = evaluate_split(model, split)
    print(f"{model.config.name} from {args.checkpoint} on {args.data} {args.split}: "
          f"{len(split)} sequences")
    print(json.dumps(metrics.as_dict()))


if __name__ == "__main__":
    main()
