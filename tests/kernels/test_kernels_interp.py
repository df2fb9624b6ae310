"""The Triton gate-and-mask kernels on CPU under Triton's interpreter, against float64.

TRITON_INTERPRET=1 must be set before triton is imported, and this pytest process may already
have imported it, so the kernels run in a subprocess (python -m kernels.interp_check) that
reports JSON; the tests assert on it. Tolerances: kernels.interp_check.TOLERANCES."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kernels.interp_check import TOLERANCES
from tests.helpers import REPO  # noqa: E402

REQUIRED_SHAPES = [[3, 7, 35], [2, 13, 74], [1, 1, 300], [4, 50, 33]]


def interpreted(*args: str, timeout: int = 300) -> str:
    """stdout of ``python ARGS`` run with TRITON_INTERPRET=1 in a fresh process."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    res = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


@pytest.fixture(scope="module")
def report() -> dict:
    return json.loads(interpreted("-m", "kernels.interp_check"))


def test_triton_path_really_ran(report):
    assert report["interpreted"] is True
    launches = report["launches"]
    # 5 shapes + dropout-exact + 6 dropout runs + eval + p=1 + partial + 2 half + mixed = 18
    assert launches["fwd"] == 18 and launches["bwd"] == 10
    assert launches["fwd_grouped"] == 2 and launches["bwd_grouped"] == 2


def test_float32_matches_float64_reference_on_odd_shapes(report):
    shapes = [case["shape"] for case in report["shapes"]]
    assert all(s in shapes for s in REQUIRED_SHAPES)
    for case in report["shapes"]:
        assert case["dtypes_kept"]
        for name, err in case["rel_err"].items():
            assert err < TOLERANCES["float32"], (case["shape"], name, err)


def test_padding_zero_in_output_and_gradients(report):
    padded = [c for c in report["shapes"] if "pad_zero" in c]
    assert sum(c["padded_elements"] for c in padded) > 0
    assert all(c["pad_zero"] for c in padded)
    assert report["dropout"]["pad_zero"]


def test_dropout_matches_philox_reference_and_is_reproducible(report):
    d = report["dropout"]
    assert max(d["rel_err_vs_philox_reference"].values()) < TOLERANCES["float32"]
    assert d["same_seed_identical"] and d["other_seed_differs"]
    assert d["manual_seed_controls_seed_none"]
    assert d["eval_deterministic"] and d["p1_all_zero"]
    assert d["kept_scaled_by_inverse_keep_prob"]
    assert abs(d["keep_rate"] - (1 - d["p"])) < 0.01  # n = 60000: 5 sigma ~ 0.009


def test_backward_with_only_x_requiring_grad(report):
    assert report["partial_grads"]["rel_err_dx"] < TOLERANCES["float32"]


def test_grouped_is_one_launch_each_way_and_exact(report):
    for label in ("plain", "dropout"):
        g = report["grouped"][label]
        assert g["launches"] == {"fwd": 0, "bwd": 0, "fwd_grouped": 1, "bwd_grouped": 1}
        errs = [e for grp in g["rel_err"].values() for e in grp.values()]
        assert len(errs) == 12 and max(errs) < TOLERANCES["float32"]


def test_mixed_dtypes_promote_output_and_keep_gradient_dtypes(report):
    m = report["mixed"]
    assert m["dtypes"] == ["torch.float32", "torch.float32", "torch.bfloat16", "torch.bfloat16"]
    assert m["rel_err"]["y"] < TOLERANCES["float32"] and m["rel_err"]["dx"] < 1e-6
    assert max(m["rel_err"]["da"], m["rel_err"]["db"]) < TOLERANCES["bfloat16"]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_within_documented_tolerance(report, dtype):
    case = report["half"][dtype]
    assert case["ok"], case.get("error")
    assert case["dtypes_kept"] and case["pad_zero"]
    for name, err in case["rel_err"].items():
        assert err < TOLERANCES[dtype], (name, err)


def test_bench_code_runs_on_cpu_under_interpreter():
    """Smoke of benchmarks.kernel's measuring code (no GPU here): tiny size, a fake timer."""
    code = ("import torch\nfrom benchmarks import kernel as bench\n"
            "fake = lambda fn, **kw: (fn(), 1.0)[1]\n"
            "rows = bench.bench_size(2, 5, 7, torch.float32, 0.1, ('triton', 'eager'), fake,"
            " 100.0, device='cpu')\n"
            "rows += bench.bench_grouped(5, (7, 3, 2), torch.float32, 0.0, fake, 100.0, 'cpu')\n"
            "s = bench.summarize(rows)\n"
            "print('ROWS', len(rows), s['largest_batch'], s['speedup_fwd_bwd_vs_eager'])\n")
    assert "ROWS 6 2 1.0" in interpreted("-c", code)


@pytest.mark.slow
def test_whole_mmlatch_step_agrees_between_triton_and_reference():
    """benchmarks.check_gpu's model check, on CPU under the interpreter with a small MMLatch."""
    code = ("import json\nfrom kernels import launch\n"
            "from benchmarks.check_gpu import check_model\n"
            "r = check_model('mmlatch', 2, 5, device='cpu', dims=(38, 7, 5), hidden=16,"
            " head_hidden=8)\n"
            "print(json.dumps({'result': r, 'launches': dict(launch.LAUNCHES)}))\n")
    out = json.loads(interpreted("-c", code, timeout=600).strip().splitlines()[-1])
    r, launches = out["result"], out["launches"]
    assert "skipped" not in r, r["skipped"]  # models is part of this repository: no skip
    # 4 steps ran on the Triton path (eval, train, 2x mask dropout): at least one launch each
    assert launches.get("fwd", 0) + launches.get("fwd_grouped", 0) >= 4
    assert launches.get("bwd", 0) + launches.get("bwd_grouped", 0) >= 4
    for mode in ("eval", "train"):
        m = r[mode]
        assert m["same_grad_set"] and m["n_grads"] > 0
        assert max(m["sentiment_rel_err"], m["loss_rel_err"], m["mask_rel_err"],
                   m["max_grad_rel_err"]) < 1e-5, m
    assert r["train_mask_dropout_reproducible"]
