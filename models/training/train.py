"""Training: L1 loss (plus a model's aux_loss), Adam, early stopping on validation loss,
ReduceLROnPlateau. The best-validation weights are kept, tested, and saved as a checkpoint.

    python -m models.train --model mmlatch --data mosi-utt --seed 0 --out runs/mmlatch-0

Shows a progress bar (stderr); the LAST stdout line is the test metrics as one JSON object
(keys: models.metrics.KEYS). Runs are deterministic for a given seed (CPU, one thread).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from models import checkpoint
from models.data.base import Batch, DatasetBundle, Split
from models.data.mosi import WORD_SOURCES
from models.data.registry import DATASETS, load_dataset
from models.env import add_log_level, configure_logging
from models.layers import step_mask
from models.metrics import Metrics, compute
from models.registry import NAMES, create
from models.training.crossfit import crossfit, halves
from models.training.recipes import EPOCH_PREDS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 5e-4
    batch_size: int = 32
    max_epochs: int = 100
    patience: int = 10
    lr_patience: int = 5
    lr_factor: float = 0.5
    seed: int = 0
    weight_decay: float = 0.0
    bucket: bool = False
    crossfit: bool = False
    input_noise: float = 0.0


@dataclass
class TrainResult:
    best_epoch: int
    best_valid_loss: float
    epochs: int
    history: list[dict[str, float]] = field(default_factory=list)
    test_preds: list[np.ndarray] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def task_loss(pred: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """L1; for per-step predictions (B, T) only valid steps count."""
    if pred.dim() == 1:
        return (pred - labels).abs().mean()
    valid = step_mask(lengths, pred.shape[1]).to(pred.dtype)
    return ((pred - labels).abs() * valid).sum() / valid.sum().clamp(min=1.0)


def batch_indices(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                  bucket: bool) -> list[np.ndarray]:
    """One epoch's batches of row indices.

    bucket=False: a random permutation cut into batches. bucket=True: rows sorted by length
    (random order among equal lengths) are cut into batches and the batches shuffled, so a
    batch holds sequences of similar length: far fewer padded steps to compute (the packed
    LSTMs loop over the longest sequence of the batch). Every row is used once either way.
    """
    perm = rng.permutation(len(lengths))
    if bucket:
        perm = perm[np.argsort(np.asarray(lengths)[perm], kind="stable")]
    batches = [perm[s:s + batch_size] for s in range(0, len(perm), batch_size)]
    if bucket:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def add_input_noise(batch: Batch, sigma: float, gen: torch.Generator) -> Batch:
    """The batch with N(0, sigma^2) added to every present modality at its valid steps
    (mosi-utt's inputs are standardised, so there sigma is in units of a feature's training
    std). An absent (all-zero) modality and padded steps stay zero. Training-time only."""
    if sigma <= 0:
        return batch
    valid = step_mask(batch.lengths, batch.text.shape[1]).to(batch.text.dtype)[..., None]

    def noisy(x: torch.Tensor) -> torch.Tensor:
        if not bool(torch.any(x)):
            return x
        return x + sigma * torch.randn(x.shape, generator=gen, dtype=x.dtype) * valid

    return dataclasses.replace(batch, text=noisy(batch.text), audio=noisy(batch.audio),
                               video=noisy(batch.video))


def _forward(model: nn.Module, batch):
    out = model(batch.text, batch.audio, batch.video, batch.lengths)
    pred = out.per_step if out.per_step is not None else out.sentiment
    return out, pred


@torch.no_grad()
def predict(model: nn.Module, split: Split, batch_size: int = 64):
    """(predictions, labels) as flat float arrays in the split's order: one value per
    sequence, or per valid step for per-step datasets. Runs in eval mode. Batches are formed
    from length-sorted rows (less padding; in eval() a row's output does not depend on the
    other rows of its batch, so the predictions are the same up to float rounding)."""
    model.eval()
    order = np.argsort(split.lengths.numpy(), kind="stable")
    preds: list[np.ndarray] = [np.empty(0, np.float32)] * len(split)
    labels: list[np.ndarray] = [np.empty(0, np.float32)] * len(split)
    for start in range(0, len(split), batch_size):
        rows = order[start:start + batch_size]
        batch = split.batch(rows)
        _, pred = _forward(model, batch)
        for i, row in enumerate(rows):
            if pred.dim() == 2:
                n = int(batch.lengths[i])
                preds[row], labels[row] = pred[i, :n].numpy(), batch.labels[i, :n].numpy()
            else:
                preds[row], labels[row] = pred[i:i + 1].numpy(), batch.labels[i:i + 1].numpy()
    return np.concatenate(preds), np.concatenate(labels)


def evaluate_split(model: nn.Module, split: Split) -> tuple[Metrics, float]:
    pred, label = predict(model, split)
    return compute(pred, label), float(np.mean(np.abs(pred - label)))


def train(model: nn.Module, bundle: DatasetBundle, cfg: TrainConfig,
          progress: bool = True) -> TrainResult:
    gen = np.random.default_rng(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=cfg.lr_factor, patience=cfg.lr_patience
    )
    noise_gen = torch.Generator().manual_seed(cfg.seed)
    best, best_state, best_epoch, bad = float("inf"), None, 0, 0
    result = TrainResult(0, float("inf"), 0)
    bar = tqdm(range(1, cfg.max_epochs + 1), desc=f"train {model.config.name}",
               disable=not progress, file=sys.stderr, leave=False)
    for epoch in bar:
        model.train()
        losses = []
        for rows in batch_indices(bundle.train.lengths.numpy(), cfg.batch_size, gen,
                                  cfg.bucket):
            batch = add_input_noise(bundle.train.batch(rows), cfg.input_noise, noise_gen)
            out, pred = _forward(model, batch)
            loss = task_loss(pred, batch.labels, batch.lengths)
            total = loss + out.aux_loss if out.aux_loss is not None else loss
            opt.zero_grad()
            total.backward()
            opt.step()
            losses.append(loss.item())
        pred, label = predict(model, bundle.valid)
        valid_loss = float(np.mean(np.abs(pred - label)))
        sched.step(valid_loss)
        result.history.append({"epoch": epoch, "train_l1": float(np.mean(losses)),
                               "valid_l1": valid_loss})
        bar.set_postfix(train=f"{np.mean(losses):.3f}", valid=f"{valid_loss:.3f}")
        logger.info("epoch %d: train L1 %.4f, valid L1 %.4f", epoch, np.mean(losses), valid_loss)
        if cfg.crossfit:  # kept for models.training.crossfit; never used for training decisions
            result.test_preds.append(predict(model, bundle.test)[0])
        if valid_loss < best - 1e-6:
            best, best_epoch, bad = valid_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.best_epoch, result.best_valid_loss, result.epochs = best_epoch, best, epoch
    return result


def parse_overrides(items: list[str]) -> dict:
    """["hidden=16", "modalities=[\"text\"]"] -> {"hidden": 16, "modalities": ("text",)}."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


def run(args: argparse.Namespace) -> dict[str, float]:
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    bundle = load_dataset(args.data, mosi_dir=args.mosi_dir, seed=args.seed,
                          absent_dim=args.absent_dim, words=args.words)
    seed_everything(args.seed)
    model = create(args.model, bundle.dims, per_step=bundle.per_step,
                   **{"zero_input_shortcut": args.zero_input_shortcut, **parse_overrides(args.set)})
    cfg = TrainConfig(lr=args.lr, batch_size=args.batch_size, max_epochs=args.max_epochs,
                      patience=args.patience, seed=args.seed, weight_decay=args.weight_decay,
                      bucket=args.bucket, crossfit=args.crossfit and not args.valid_only,
                      input_noise=args.input_noise)
    result = train(model, bundle, cfg, progress=not args.no_progress)
    valid, _ = evaluate_split(model, bundle.valid)
    meta = {"data": args.data, "description": bundle.description, "seed": args.seed,
            "best_epoch": result.best_epoch,
            "epochs": result.epochs, "valid_l1": result.best_valid_loss,
            "valid": valid.as_dict(), "train": cfg.__dict__}
    if args.valid_only:
        metrics = valid
    else:
        metrics, _ = evaluate_split(model, bundle.test)
        meta["test"] = metrics.as_dict()
        if cfg.crossfit:
            _, label = predict(model, bundle.test)
            lengths = bundle.test.lengths.numpy() if bundle.per_step else np.ones(
                len(bundle.test), np.int64)
            pred, chosen = crossfit(result.test_preds, label, lengths,
                                    halves(len(bundle.test)))
            meta["test_crossfit"] = compute(pred, label).as_dict()
            meta["crossfit_epochs"] = [c + 1 for c in chosen]
    if args.out:
        out = Path(args.out)
        checkpoint.save(model, out, meta=meta)
        (out / "history.json").write_text(json.dumps(result.history, indent=1) + "\n")
        logger.info("wrote %s (checkpoint, history.json)", out)
        if cfg.crossfit:  # for models.training.crossfit across recipes (models.results.run)
            np.savez_compressed(out / EPOCH_PREDS, preds=np.stack(result.test_preds),
                                labels=label, lengths=lengths)
    print(f"{args.model} on {args.data} seed {args.seed}: best epoch {result.best_epoch} of "
          f"{result.epochs}, valid L1 {result.best_valid_loss:.4f}")
    return metrics.as_dict()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m models.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=NAMES)
    p.add_argument("--data", required=True, choices=DATASETS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="checkpoint folder to write")
    p.add_argument("--mosi-dir", default=None, help="CMU-MOSI folder (default $MOSI_DIR or "
                   "../shared/data/mosi)")
    p.add_argument("--max-epochs", type=int, default=TrainConfig.max_epochs)
    p.add_argument("--patience", type=int, default=TrainConfig.patience)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--weight-decay", type=float, default=TrainConfig.weight_decay,
                   help="Adam L2 weight decay")
    p.add_argument("--bucket", action="store_true",
                   help="length-bucketed training batches (see batch_indices)")
    p.add_argument("--zero-input-shortcut", action="store_true",
                   help="run LSTMs over all-zero (absent) modalities once per batch "
                   "(model option zero_input_shortcut, models.layers.SequenceLSTM; same "
                   "maths, faster; not saved in the checkpoint)")
    p.add_argument("--input-noise", type=float, default=TrainConfig.input_noise,
                   metavar="SIGMA", help="train-time Gaussian noise on the (standardised) "
                   "inputs, in feature std units (add_input_noise)")
    p.add_argument("--crossfit", action="store_true",
                   help="also score the test split with cross-fitted epoch selection "
                   "(models.training.crossfit; meta test_crossfit)")
    p.add_argument("--valid-only", action="store_true",
                   help="never touch the test split: the last line is the VALIDATION metrics "
                   "(for choosing settings)")
    p.add_argument("--absent-dim", type=int, default=1,
                   help="size of the all-zero audio/video inputs of mosi-text")
    p.add_argument("--words", default="timestamped", choices=WORD_SOURCES,
                   help="mosi-text word source: timestamped words (.csd, needs h5py) or "
                   "transcripts.csv")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="model config override (JSON value), repeatable")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    return add_log_level(p)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    metrics = run(args)
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
