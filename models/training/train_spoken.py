"""Train the default live model on spoken MOSI, with modality dropout and face augmentation.

    python -m models.training.train_spoken --model mmlatch --out assets/model

The labels are real CMU-MOSI sentiment; the text steps come from the words, the audio steps
from espeak-ng voices, and there is never a face (see realtime.eval.spoken_mosi). So that neither
a missing nor an unfamiliar face or voice can dominate, every training sample is perturbed
independently (`Augment`):

* audio dropped (zeros) with probability ``p_audio``; text dropped with ``p_text`` (small);
  never both;
* with probability ``p_face`` a random face stream is added: rows shaped like the live face
  features (blendshape-like scores in [0, 1], a small head pose, face_present = 1), drawn
  independently of the label, so the model learns that a face alone carries no sentiment
  here. (The live face branch is therefore trained for robustness, not from labelled faces.)

Selection: the epoch with the lowest validation L1 on the validation voice (never trained
on, never the test voice), from its most realistic word source (`data_spoken.VALID_PREFERENCE`:
the streaming pipeline's final windows when built). The checkpoint's meta records the data,
augmentation and metrics.

Choosing among trained candidates (`select`, ``--score DIR ...``): the rule, fixed before any
candidate was scored on the held-out-voice set, is the highest validation Acc2 non0, ties by
the lower validation MAE (L1).

    python -m models.training.train_spoken --score assets/model DIR2 DIR3
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from models import checkpoint
from models.data.base import Batch, DatasetBundle, Split
from models.env import add_log_level, configure_logging
from models.metrics import compute
from models.registry import NAMES, create
from models.training.train import parse_overrides, predict, seed_everything, task_loss

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Augment:
    """Per-sample probabilities; ``face_present_index``: the face column that flags a face
    (None: the video input has no such column, faces are not simulated)."""

    p_audio: float = 0.3
    p_text: float = 0.05
    p_face: float = 0.5
    face_present_index: int | None = None
    blend_columns: int = 52


@dataclass(frozen=True)
class FitResult:
    """`fit`'s outcome: the kept (best-validation) epoch, its validation L1, the epochs run,
    and per epoch {"epoch", "train_l1", "valid_l1"} (as in models.training.train)."""

    best_epoch: int
    valid_l1: float
    epochs: int
    history: tuple[dict[str, float], ...]


def random_faces(steps: int, dim: int, aug: Augment, gen: np.random.Generator) -> np.ndarray:
    """(steps, dim) rows that look like live face features, drawn broadly so that real faces
    fall inside what training saw: a per-sample expression (each score U(0,1)**g with g in
    [1, 6]: mostly small, sometimes large) jittered per step, a per-sample head pose (about
    +-30 degrees, in the live units of degrees / 90) with per-step jitter, and the
    face-present flag. With probability 0.2 the face only appears part-way (earlier steps
    are no-face zeros, as when a face enters the frame)."""
    rows = np.zeros((steps, dim), np.float32)
    k = min(aug.blend_columns, dim)
    base = gen.random(k) ** gen.uniform(1.0, 6.0)
    rows[:, :k] = np.clip(base + gen.normal(0, 0.08, size=(steps, k)), 0, 1)
    if dim > k:
        pose = gen.normal(0, 0.3, size=dim - k)
        rows[:, k:] = pose + gen.normal(0, 0.05, size=(steps, dim - k))
    if aug.face_present_index is not None:
        rows[:, aug.face_present_index] = 1.0
        if steps > 1 and gen.random() < 0.2:
            rows[: int(gen.integers(1, steps))] = 0.0
    return rows


def augment(batch: Batch, aug: Augment, gen: np.random.Generator) -> Batch:
    text, audio, video = batch.text.clone(), batch.audio.clone(), batch.video.clone()
    for i, n in enumerate(batch.lengths.tolist()):
        drop_text = gen.random() < aug.p_text
        drop_audio = (not drop_text) and gen.random() < aug.p_audio
        if drop_text:
            text[i] = 0
        if drop_audio:
            audio[i] = 0
        if aug.face_present_index is not None and gen.random() < aug.p_face:
            video[i, :n] = torch.from_numpy(random_faces(n, video.shape[2], aug, gen))
    return Batch(text, audio, video, batch.lengths, batch.labels)


def fit(model: torch.nn.Module, bundle: DatasetBundle, aug: Augment, lr: float = 5e-4,
        batch_size: int = 32, max_epochs: int = 40, patience: int = 6, seed: int = 0,
        on_best: Callable[[torch.nn.Module, int, float], None] | None = None) -> FitResult:
    """Adam + L1 with augmentation; keeps the epoch with the best validation L1 (and calls
    ``on_best(model, epoch, valid_l1)`` whenever it improves, e.g. to save it)."""
    gen = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best, best_state, best_epoch, bad, history = float("inf"), None, 0, 0, []
    for epoch in range(1, max_epochs + 1):
        model.train()
        order = gen.permutation(len(bundle.train))
        losses = []
        for start in range(0, len(order), batch_size):
            batch = augment(bundle.train.batch(order[start:start + batch_size]), aug, gen)
            out = model(batch.text, batch.audio, batch.video, batch.lengths)
            loss = task_loss(out.sentiment, batch.labels, batch.lengths)
            total = loss + out.aux_loss if out.aux_loss is not None else loss
            opt.zero_grad()
            total.backward()
            opt.step()
            losses.append(float(loss.detach()))
        pred, label = predict(model, bundle.valid)
        valid_l1 = float(np.mean(np.abs(pred - label)))
        history.append({"epoch": epoch, "train_l1": float(np.mean(losses)), "valid_l1": valid_l1})
        logger.info("epoch %d: train L1 %.3f, valid L1 %.3f", epoch, np.mean(losses), valid_l1)
        if valid_l1 < best - 1e-6:
            best, best_epoch, bad = valid_l1, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
            if on_best is not None:
                on_best(model, epoch, valid_l1)
                model.train()
        else:
            bad += 1
            if bad >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(best_epoch, best, len(history), tuple(history))


def face_present_index(bundle_meta_face: tuple[str, ...]) -> int | None:
    return bundle_meta_face.index("face_present") if "face_present" in bundle_meta_face else None


def score(folders: list[Path], valid: Split) -> list[dict]:
    """Validation metrics of each checkpoint folder on the `Split` ``valid``, best first by
    the selection rule (`select`)."""
    rows = []
    for folder in folders:
        model = checkpoint.load(folder).eval()
        pred, label = predict(model, valid)
        rows.append({"checkpoint": str(folder), "model": model.config.name,
                     **{k: round(v, 4) for k, v in compute(pred, label).as_dict().items()}})
    ranked = select(rows)
    for r in ranked:
        logger.info("%s: Acc2 non0 %.4f MAE %.4f F1 non0 %.4f Acc7 %.4f Corr %.4f",
                    r["checkpoint"], r["acc2_non0"], r["mae"], r["f1_non0"], r["acc7"], r["corr"])
    return ranked


def select(rows: list[dict]) -> list[dict]:
    """The selection rule: highest Acc2 non0, ties by lower MAE."""
    return sorted(rows, key=lambda r: (-r["acc2_non0"], r["mae"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=NAMES, default="mmlatch")
    p.add_argument("--data", type=Path, default=None, help="spoken-MOSI folder (default cache)")
    p.add_argument("--words", choices=("asr", "oracle", "both"), default="both",
                   help="which training files to use (validation always prefers asr)")
    p.add_argument("--out", type=Path, default=None, help="checkpoint folder to write")
    p.add_argument("--valid-voice", default=None,
                   help="validation voice tag, e.g. en-us-nyc-160 (default: any)")
    p.add_argument("--valid-words", choices=("live", "asr", "oracle"), default=None,
                   help="validation word source for epoch selection (default: the most "
                        "realistic present)")
    p.add_argument("--score", type=Path, nargs="+", default=None, metavar="DIR",
                   help="only score these checkpoints on the validation set, best first")
    p.add_argument("--score-file", type=Path, default=None,
                   help="with --score: a spoken-MOSI file to score on instead (e.g. the "
                        "validation voice's oracle words, for the ASR gap)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--patience", type=int, default=6)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--p-audio", type=float, default=Augment.p_audio)
    p.add_argument("--p-text", type=float, default=Augment.p_text)
    p.add_argument("--p-face", type=float, default=Augment.p_face)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="model config override (JSON value)")
    a = add_log_level(p).parse_args(argv)
    configure_logging(a.log_level)
    if a.score is None and a.out is None:
        p.error("--out is required (unless --score)")
    torch.set_num_threads(a.threads)
    seed_everything(a.seed)
    from models.data.spoken import read_split, spoken_dir, to_split, train_valid_bundle

    if a.score is not None:
        if a.score_file is not None:
            used, valid = [a.score_file], to_split([read_split(a.score_file)])
        else:
            _, files = train_valid_bundle(a.data or spoken_dir(), a.words, a.valid_voice)
            used = files["valid"]
            valid = to_split([read_split(f) for f in used])
        ranked = score(a.score, valid)
        print(json.dumps({"valid_files": [f.name for f in used], "segments": len(valid),
                          "ranked": ranked}, indent=1))
        return 0
    bundle, files = train_valid_bundle(a.data or spoken_dir(), a.words, a.valid_voice,
                                       a.valid_words)
    face_names = read_split(files["train"][0]).meta.face_features
    aug = Augment(a.p_audio, a.p_text, a.p_face, face_present_index(face_names))
    model = create(a.model, bundle.dims, **parse_overrides(a.set))
    meta = {"data": "spoken-mosi", "description": bundle.description,
            "files": {k: [f.name for f in v] for k, v in files.items()},
            "augment": asdict(aug), "lr": a.lr, "batch_size": a.batch_size, "seed": a.seed}

    def save(m: torch.nn.Module, epoch: int, valid_l1: float) -> None:
        pred, label = predict(m, bundle.valid)
        valid = compute(pred, label).as_dict()
        checkpoint.save(m, a.out, meta={**meta, "best_epoch": epoch, "valid": valid})

    result = fit(model, bundle, aug, lr=a.lr, batch_size=a.batch_size, max_epochs=a.epochs,
                 patience=a.patience, seed=a.seed, on_best=save)
    pred, label = predict(model, bundle.valid)
    valid = compute(pred, label).as_dict()
    meta.update({"best_epoch": result.best_epoch, "epochs": result.epochs,
                 "valid": valid})
    checkpoint.save(model, a.out, meta=meta)
    print(json.dumps({"valid": valid, "best_epoch": result.best_epoch}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
