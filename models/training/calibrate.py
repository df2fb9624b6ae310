"""Personal calibration: fine-tune the voice and face branches on a recorded session.

    python -m models.calibrate --session FILE [--base DIR] [--out DIR] [--epochs N]
                               [--min-samples N] [--progress]

The default model learned sentiment from words only (spoken MOSI has no labelled voices or
faces). A session recorded by the dashboard (`realtime.calibration.recorder.SessionRecorder`) pairs
the live model's input windows with the user's own labels; calibration trains only the
parameters of the audio and video branches (encoders, and the top-down projections from or
to them) on it, the text branch and the fusion staying as they were. Then it fits the face
weight W (`fit_face_weight`: the live pipeline's sentiment is clip(model + W * face valence)
while a face is in view) on the fine-tuned model's sentiment for the session's windows and
the face valence recorded with them, and saves a personal checkpoint (`models.checkpoint`
format) with W in its meta (``face_weight``; read back by `models.checkpoint.face_weight`).
The app loads it like any other and applies its W.

The session file format is `models.data.sessions`.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from models.base import DimensionMismatch, check_dims
from models.checkpoint import FACE_WEIGHT_KEY, FACE_WEIGHT_LIMIT
from models.checkpoint import meta_face_weight as fitted_face_weight  # noqa: F401
from models.data.base import make_split
from models.data.sessions import Session, SessionError, read_session
from models.env import DEFAULT_MODEL_DIR, add_log_level, cache_dir, configure_logging

MIN_SAMPLES = 8  # fewer labelled windows than this are refused: nothing to learn from
EPOCHS = 40
BRANCHES = ("audio", "video")

logger = logging.getLogger(__name__)


def is_branch_parameter(name: str) -> bool:
    """True for parameters of the audio/video branches: a dotted part that is a branch name
    (``encoders.audio...``) or a projection from/to one (``projections.text_from_video``)."""
    for part in name.split("."):
        if part in BRANCHES:
            return True
        if "_from_" in part and any(b in part.split("_from_") for b in BRANCHES):
            return True
    return False


def calibrate(base: torch.nn.Module, session: Session, epochs: int = EPOCHS, lr: float = 1e-3,
              batch_size: int = 16, seed: int = 0,
              on_epoch: Callable[[int, float], None] | None = None) -> torch.nn.Module:
    """A copy of ``base`` whose audio/video branch parameters are fitted (L1) to the
    session's labels; every other parameter is unchanged. Returned in eval mode.
    ``on_epoch(epoch, mean_l1)`` is called after each epoch (1-based) for progress."""
    check_dims(base.config.dims, session.dims, where="the base model")
    model = copy.deepcopy(base)
    trainable = [p for n, p in model.named_parameters() if is_branch_parameter(n)]
    if not trainable:
        raise SessionError(f"{type(base).__name__} has no audio/video branch parameters")
    for n, p in model.named_parameters():
        p.requires_grad_(is_branch_parameter(n))
    split = make_split(list(session.text), list(session.audio), list(session.video),
                       [float(x) for x in session.labels], [str(i) for i in range(len(session))],
                       per_step=False)
    gen = np.random.default_rng(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(trainable, lr=lr)
    model.train()
    for epoch in range(1, epochs + 1):
        order = gen.permutation(len(split))
        total = 0.0
        for start in range(0, len(order), batch_size):
            b = split.batch(order[start:start + batch_size])
            out = model(b.text, b.audio, b.video, b.lengths)
            loss = (out.sentiment - b.labels).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b.labels)
        logger.debug("calibration epoch %d/%d: L1 %.4f", epoch, epochs, total / len(order))
        if on_epoch is not None:
            on_epoch(epoch, total / len(order))
    for p in model.parameters():
        p.requires_grad_(True)
    return model.eval()


def fit_face_weight(model_sentiment: np.ndarray, face_valence: np.ndarray,
                    labels: np.ndarray, min_faces: int = MIN_SAMPLES) -> float:
    """The face weight W (the pipeline's ``face_weight``) that best explains the user's
    labels as model sentiment + W * face valence: least squares over the windows with a face
    (finite valence), no intercept, clipped to +-FACE_WEIGHT_LIMIT. Fewer than ``min_faces``
    such windows, or a valence that never moves, give 0 (the model's sentiment alone)."""
    s, v, y = (np.asarray(a, np.float64).reshape(-1) for a in
               (model_sentiment, face_valence, labels))
    if not len(s) == len(v) == len(y):
        raise ValueError(f"fit_face_weight needs equal lengths, got {len(s)}, {len(v)}, "
                         f"{len(y)}")
    keep = np.isfinite(v) & np.isfinite(s) & np.isfinite(y)
    v, r = v[keep], (y - s)[keep]
    if len(v) < min_faces or float(v @ v) < 1e-9:
        return 0.0
    return float(np.clip((v @ r) / (v @ v), -FACE_WEIGHT_LIMIT, FACE_WEIGHT_LIMIT))


@torch.no_grad()
def predict_session(model: torch.nn.Module, session: Session) -> np.ndarray:
    split = make_split(list(session.text), list(session.audio), list(session.video),
                       [float(x) for x in session.labels], [str(i) for i in range(len(session))],
                       per_step=False)
    model.eval()
    b = split.batch(range(len(split)))
    return model(b.text, b.audio, b.video, b.lengths).sentiment.numpy()


def personal_model_dir() -> Path:
    return cache_dir() / "personal_model"


def main(argv: list[str] | None = None) -> int:
    from models import checkpoint

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--session", type=Path, required=True, help="recorded session (.npz)")
    p.add_argument("--base", type=Path, default=None, help="default: assets/model")
    p.add_argument("--out", type=Path, default=None,
                   help=f"personal checkpoint folder (default {personal_model_dir()})")
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-samples", type=int, default=MIN_SAMPLES,
                   help="refuse sessions with fewer labelled windows (default %(default)s)")
    p.add_argument("--progress", action="store_true",
                   help="print 'epoch E/N l1 X' after each epoch (for the dashboard)")
    a = add_log_level(p).parse_args(argv)
    configure_logging(a.log_level)
    torch.set_num_threads(1)
    try:
        return _run(a)
    except (SessionError, checkpoint.CheckpointError, DimensionMismatch) as exc:
        print(f"calibrate: {exc}", file=sys.stderr)
        return 2


def _run(a: argparse.Namespace) -> int:
    from models import checkpoint

    session = read_session(a.session)
    if len(session) < a.min_samples:
        raise SessionError(f"{a.session}: only {len(session)} labelled windows; "
                           f"calibration needs at least {a.min_samples}")
    base_dir = a.base or DEFAULT_MODEL_DIR
    try:
        base = checkpoint.load(base_dir)
    except checkpoint.CheckpointError as exc:
        raise checkpoint.CheckpointError(f"the base model: {exc}") from None

    def progress(epoch: int, l1: float) -> None:
        if a.progress:
            print(f"epoch {epoch}/{a.epochs} l1 {l1:.4f}", flush=True)

    model = calibrate(base, session, epochs=a.epochs, lr=a.lr, seed=a.seed, on_epoch=progress)
    before = float(np.mean(np.abs(predict_session(base, session) - session.labels)))
    tuned = predict_session(model, session)
    after = float(np.mean(np.abs(tuned - session.labels)))
    weight = fit_face_weight(tuned, session.face_valence, session.labels,
                             min_faces=a.min_samples)
    faces = int(np.isfinite(session.face_valence).sum())
    fused = np.where(np.isfinite(session.face_valence),
                     np.clip(tuned + weight * np.nan_to_num(session.face_valence), -3, 3), tuned)
    with_face = float(np.mean(np.abs(fused - session.labels)))
    meta = {**checkpoint.read_meta(base_dir), "calibrated_from": str(base_dir),
            "session": a.session.name, "session_samples": len(session),
            "trained_branches": list(BRANCHES), "session_l1_before": round(before, 4),
            "session_l1_after": round(after, 4), FACE_WEIGHT_KEY: round(weight, 4),
            "face_weight_windows": faces, "session_l1_with_face": round(with_face, 4)}
    out = checkpoint.save(model, a.out or personal_model_dir(), meta=meta)  # refuses NaN/Inf
    print(f"personal model: {out} (session L1 {before:.3f} -> {after:.3f}; face weight "
          f"{weight:+.3f} from {faces} windows with a face -> L1 {with_face:.3f}); load it "
          f"with python -m realtime --checkpoint {out}")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
