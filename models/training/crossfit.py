"""Cross-fitted checkpoint selection: scoring test predictions whose epoch was chosen on
held-out data that is NOT contaminated, without ever choosing on the data being scored.

Why (mosi-utt): the bc-LSTM utterance features of the 62 train videos were produced by
extractors trained on those videos' labels, so validation videos carved from them are
in-sample for the features: a ridge probe on the text features scores ~99% binary accuracy on
them and ~75% on the test videos (see `models.training.leakage`). Early stopping on them picks the
epoch
that best exploits that leak, not the one that generalises, and there is no clean validation
video in these files.

Protocol. The test sequences (videos) are split once into two fixed halves A and B (seed 0,
the same for every model and run). Training runs exactly as usual (early stopping and the LR
schedule still follow the validation split, so the trajectory never sees test labels) and the
test predictions of every epoch are kept. Half A is then scored with the epoch whose
predictions have the lowest L1 on half B, and half B with the epoch best on half A. Every test
prediction is thus chosen without its own labels (2-fold cross-fitting), and the scores cover
all test utterances, so they compare with the usual table.
"""

from __future__ import annotations

import numpy as np

HALVES_SEED = 0


def halves(n_sequences: int, seed: int = HALVES_SEED) -> np.ndarray:
    """(N,) int: 0 for half A, 1 for half B, a fixed seeded split of the sequences."""
    order = np.random.default_rng(seed).permutation(n_sequences)
    half = np.ones(n_sequences, np.int64)
    half[order[: n_sequences // 2]] = 0
    return half


def crossfit(epoch_preds: list[np.ndarray], label: np.ndarray, lengths: np.ndarray,
             half: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Cross-fitted predictions.

    epoch_preds: per epoch, the flat predictions (one per valid step of each sequence, in
    sequence order, as models.training.train.predict returns them); label: the matching flat labels;
    lengths: (N,) valid steps per sequence (all 1 for sequence-level data); half: (N,) 0/1.
    Returns (predictions, (epoch index used for half A, epoch index used for half B)).
    """
    if not epoch_preds:
        raise ValueError("no epochs to choose from")
    of_step = np.repeat(np.asarray(half), np.asarray(lengths))
    if of_step.shape != np.asarray(label).shape:
        raise ValueError(f"lengths cover {of_step.size} steps but there are "
                         f"{np.asarray(label).size} labels")
    if set(np.unique(of_step)) != {0, 1}:
        raise ValueError("both halves need at least one step")
    errors = np.stack([np.abs(p - label) for p in epoch_preds])  # (E, steps)
    l1 = np.stack([errors[:, of_step == h].mean(1) for h in (0, 1)])  # (2, E)
    chosen = (int(np.argmin(l1[1])), int(np.argmin(l1[0])))  # A by B's L1, B by A's
    out = np.empty_like(np.asarray(epoch_preds[0]))
    for h in (0, 1):
        out[of_step == h] = epoch_preds[chosen[h]][of_step == h]
    return out, chosen
