"""Metrics on hand-made cases (MMSA / MMLatch conventions)."""

import math

import numpy as np
import pytest

from models.metrics import KEYS, compute, pearson, weighted_f1


def test_acc2_has0_and_non0_differ_on_zero_labels():
    pred = [1.0, -1.0, 0.0, 2.0]
    label = [0.5, -0.5, -1.0, 0.0]
    m = compute(pred, label)
    # has0: pred>=0 [T,F,T,T] vs label>=0 [T,F,F,T] -> 3/4
    assert m.acc2_has0 == pytest.approx(0.75)
    # non0 drops the zero label: pred>0 [T,F,F] vs label>0 [T,F,F] -> 1
    assert m.acc2_non0 == pytest.approx(1.0)


def test_zero_prediction_is_negative_for_non0_positive_for_has0():
    m = compute([0.0, 0.0], [1.0, -1.0])
    assert m.acc2_has0 == pytest.approx(0.5)  # 0 >= 0 counts as positive
    assert m.acc2_non0 == pytest.approx(0.5)  # 0 > 0 is false: counts as negative


def test_weighted_f1_by_hand():
    truth = np.array([1, 1, 1, 0])
    pred = np.array([1, 1, 0, 0])
    # class 1: tp=2 fp=0 fn=1 -> F1 = 4/5 ; class 0: tp=1 fp=1 fn=0 -> 2/3
    expected = (0.8 * 3 + (2 / 3) * 1) / 4
    assert weighted_f1(truth, pred) == pytest.approx(expected)
    m = compute([1, 1, -1, -1], [1, 1, 1, -1])
    assert m.f1_has0 == pytest.approx(expected)
    assert m.f1_non0 == pytest.approx(expected)


def test_acc7_clips_then_rounds():
    pred = [3.7, -0.4, -5.0, 1.4, 2.5]
    label = [3.0, 0.4, -2.6, 1.6, 2.0]
    m = compute(pred, label)
    # 3.7->3 == 3 ; -0.4->0 == 0.4->0 ; -5->-3 == -2.6->-3 ; 1.4->1 != 1.6->2 ;
    # 2.5->2 (half to even) == 2
    assert m.acc7 == pytest.approx(4 / 5)


def test_mae_and_corr():
    pred = np.array([0.0, 1.0, 2.0, 4.0])
    label = np.array([1.0, 1.0, 3.0, 3.0])
    m = compute(pred, label)
    assert m.mae == pytest.approx(np.mean([1, 0, 1, 1]))
    assert m.corr == pytest.approx(np.corrcoef(pred, label)[0, 1])
    assert pearson(np.ones(3), np.arange(3.0)) == 0.0


def test_keys_and_errors():
    m = compute([1.0, -1.0], [1.0, 1.0])
    assert tuple(m.as_dict()) == KEYS
    assert math.isnan(compute([1.0], [0.0]).acc2_non0)
    with pytest.raises(ValueError, match="equal"):
        compute([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        compute([], [])


def test_paired_acc2_counts_discordant_samples_and_tests_them():
    from models.metrics import mcnemar_exact, paired_acc2, wilson

    label = np.array([1.0, 2.0, -1.0, -2.0, 0.0, 1.5, -0.5, 2.5])
    a = np.array([0.5, 1.0, -1.0, 1.0, 3.0, -1.0, -0.1, 1.0])  # wrong on 4th and 6th
    b = np.array([0.5, -1.0, -1.0, -1.0, -3.0, 1.0, 0.2, 1.0])  # wrong on 2nd and 7th
    r = paired_acc2(a, b, label)
    assert (r.n, r.both, r.only_a, r.only_b, r.neither) == (7, 3, 2, 2, 0)  # label 0 left out
    assert r.acc_a == r.acc_b == pytest.approx(5 / 7) and r.diff == 0.0
    assert r.mcnemar_p == 1.0 and r.ci_diff[0] < 0 < r.ci_diff[1]
    # by hand: 1 vs 9 discordant, two-sided exact p = 2 * (1 + 10) / 2**10
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(0, 0) == 1.0
    lo, hi = wilson(70, 100)  # the textbook value: 0.604 - 0.781
    assert lo == pytest.approx(0.6041, abs=1e-3) and hi == pytest.approx(0.7810, abs=1e-3)
    with pytest.raises(ValueError, match="equal 1-D"):
        paired_acc2(a, b[:3], label)
