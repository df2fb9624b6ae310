"""Sentiment regression metrics, as in the MMSA toolkit and the MMLatch code.

* acc2_has0: (pred >= 0) vs (label >= 0) over all samples ("negative / non-negative").
* acc2_non0: (pred > 0) vs (label > 0) over samples whose label is not 0.
* f1_has0, f1_non0: weighted F1 (per-class F1 weighted by class support) in those settings.
* acc7: round(clip(x, -3, 3)) equal for prediction and label (numpy rounding, half to even).
* mae: mean absolute error; corr: Pearson correlation (0.0 when either side is constant).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

KEYS = ("acc2_has0", "acc2_non0", "f1_has0", "f1_non0", "acc7", "mae", "corr")


@dataclass(frozen=True)
class Metrics:
    acc2_has0: float
    acc2_non0: float
    f1_has0: float
    f1_non0: float
    acc7: float
    mae: float
    corr: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def weighted_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """Weighted F1 over the classes present in ``truth`` (bool or int labels)."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.size == 0:
        return float("nan")
    total = 0.0
    for cls in np.unique(truth):
        tp = np.sum((pred == cls) & (truth == cls))
        fp = np.sum((pred == cls) & (truth != cls))
        fn = np.sum((pred != cls) & (truth == cls))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        total += f1 * np.sum(truth == cls)
    return float(total / truth.size)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def compute(pred, label) -> Metrics:
    pred = np.asarray(pred, np.float64).reshape(-1)
    label = np.asarray(label, np.float64).reshape(-1)
    if pred.shape != label.shape or pred.size == 0:
        raise ValueError(f"need equal, non-empty predictions and labels, got {pred.shape}, "
                         f"{label.shape}")
    non0 = label != 0
    has0_t, has0_p = label >= 0, pred >= 0
    non0_t, non0_p = label[non0] > 0, pred[non0] > 0
    r7 = np.round(np.clip(pred, -3, 3)) == np.round(np.clip(label, -3, 3))
    return Metrics(
        acc2_has0=float(np.mean(has0_t == has0_p)),
        acc2_non0=float(np.mean(non0_t == non0_p)) if non0.any() else float("nan"),
        f1_has0=weighted_f1(has0_t, has0_p),
        f1_non0=weighted_f1(non0_t, non0_p),
        acc7=float(np.mean(r7)),
        mae=float(np.mean(np.abs(pred - label))),
        corr=pearson(pred, label),
    )


@dataclass(frozen=True)
class PairedAcc2:
    """Acc2 (non0: labels that are not 0, pred > 0 vs label > 0) of two predictors on the
    same samples, and whether they differ.

    n: samples scored; acc_a, acc_b and their Wilson 95% intervals (ci_a, ci_b); both,
    only_a, only_b, neither: samples each got right; diff: acc_b - acc_a with a 95%
    interval (Wald, for paired proportions); mcnemar_p: the exact two-sided McNemar test
    (a binomial test with p = 1/2 on the only_a + only_b discordant samples): the
    probability of a split at least this uneven if both were equally accurate."""

    n: int
    acc_a: float
    acc_b: float
    ci_a: tuple[float, float]
    ci_b: tuple[float, float]
    both: int
    only_a: int
    only_b: int
    neither: int
    diff: float
    ci_diff: tuple[float, float]
    mcnemar_p: float

    def as_dict(self) -> dict:
        return asdict(self)


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (float(centre - half), float(centre + half))


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value for the discordant counts."""
    from math import comb

    m, k = only_a + only_b, min(only_a, only_b)
    if m == 0:
        return 1.0
    tail = sum(comb(m, i) for i in range(k + 1)) / 2.0**m
    return float(min(1.0, 2.0 * tail))


def paired_acc2(pred_a, pred_b, label, z: float = 1.959964) -> PairedAcc2:
    """`PairedAcc2` of predictions ``pred_a`` and ``pred_b`` against ``label`` (non0)."""
    a, b = np.asarray(pred_a, np.float64), np.asarray(pred_b, np.float64)
    label = np.asarray(label, np.float64)
    if not a.shape == b.shape == label.shape or a.ndim != 1:
        raise ValueError(f"need three equal 1-D arrays, got {a.shape}, {b.shape}, "
                         f"{label.shape}")
    keep = label != 0
    truth = label[keep] > 0
    ok_a, ok_b = (a[keep] > 0) == truth, (b[keep] > 0) == truth
    n = int(keep.sum())
    both, only_a = int(np.sum(ok_a & ok_b)), int(np.sum(ok_a & ~ok_b))
    only_b, neither = int(np.sum(~ok_a & ok_b)), int(np.sum(~ok_a & ~ok_b))
    diff = (only_b - only_a) / n if n else float("nan")
    se = np.sqrt(max(only_a + only_b - n * diff * diff, 0.0)) / n if n else float("nan")
    return PairedAcc2(
        n=n, acc_a=float(ok_a.mean()) if n else float("nan"),
        acc_b=float(ok_b.mean()) if n else float("nan"),
        ci_a=wilson(int(ok_a.sum()), n, z), ci_b=wilson(int(ok_b.sum()), n, z),
        both=both, only_a=only_a, only_b=only_b, neither=neither, diff=float(diff),
        ci_diff=(float(diff - z * se), float(diff + z * se)),
        mcnemar_p=mcnemar_exact(only_a, only_b))
