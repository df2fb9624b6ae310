"""Training recipes for mosi-utt, and their cross-fitted choice (models.training.crossfit).

Why. mosi-utt has no clean validation videos (models.training.leakage): the validation videos carved
from the bc-LSTM train videos are in-sample for the features, so they cannot choose a
training recipe any better than they choose an epoch. Settings other than the issue's recipe
may only be reported through cross-fitting, never by picking the best table row.

The recipes were fixed before any of them was scored on test (2026-12-01, 21:16 UTC, when
their first runs started), each for a reason seen in the issue recipe's own training curves,
not in test scores:

* ``issue``: the issue's recipe (batch 32).
* ``batch8``: batch 8. With batch 32 an epoch of the 54 training videos is 2 updates; train
  L1 sits at ~1.1 for the first ~13 epochs and early stopping ends runs after ~70 updates.
* ``batch8_noise0.5``: batch 8 and Gaussian noise of 0.5 feature-std on every training input
  (models.training.train.add_input_noise): the train
  videos' features are near-separable (ridge probe
  ~98%) while the test videos' are not, so a model that trusts them is over-confident.

Protocol (`pooled`). For one model and seed, the test predictions of every epoch of every
recipe are candidates. Each fixed half of the test videos (models.training.crossfit.halves) is
scored
with the candidate -- a (recipe, epoch) pair -- whose L1 is lowest on the OTHER half. No test
prediction is chosen with its own labels; training itself (early stopping, LR schedule) never
sees the test labels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.metrics import compute
from models.training.crossfit import crossfit, halves

RECIPES: dict[str, tuple[str, ...]] = {
    "issue": (),
    "batch8": ("--batch-size=8",),
    "batch8_noise0.5": ("--batch-size=8", "--input-noise=0.5"),
}
RECIPE_MODELS = ("mmlatch", "mmmie", "late_fusion")
EPOCH_PREDS = "test_epoch_preds.npz"  # written by models.training.train --crossfit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pooled:
    metrics: dict[str, float]
    chosen: tuple[tuple[str, int], tuple[str, int]]  # (recipe, 1-based epoch) for halves A, B


def load_epoch_preds(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(preds (E, steps), labels (steps,), lengths (N,)) of a finished --crossfit run."""
    path = run / EPOCH_PREDS
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: rerun that run with models.train --crossfit")
    logger.debug("per-epoch test predictions from %s", path)
    with np.load(path) as f:
        return f["preds"], f["labels"], f["lengths"]


def pooled(runs: dict[str, Path]) -> Pooled:
    """Cross-fitted choice over every (recipe, epoch) of one model and seed; ``runs``: recipe
    name -> its run folder. All runs must score the same test steps."""
    candidates, names, ref = [], [], None
    for recipe, run in runs.items():
        preds, labels, lengths = load_epoch_preds(run)
        if ref is None:
            ref = (labels, lengths)
        elif not (np.array_equal(labels, ref[0]) and np.array_equal(lengths, ref[1])):
            raise ValueError(f"{run} scored other test steps than {next(iter(runs.values()))}")
        candidates += list(preds)
        names += [(recipe, e + 1) for e in range(len(preds))]
    if ref is None:
        raise ValueError("no runs to pool")
    labels, lengths = ref
    pred, (a, b) = crossfit(candidates, labels, lengths, halves(len(lengths)))
    return Pooled(compute(pred, labels).as_dict(), (names[a], names[b]))
