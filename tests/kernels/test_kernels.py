"""kernels.gate_mask in this process: the reference, the torch backend, validation, backend
selection, the Philox model of the Triton dropout stream, and the GPU scripts' no-CUDA exit.
The Triton kernels themselves are tested under the interpreter in test_kernels_interp.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from kernels import backend_scope, gate_mask, gate_mask_grouped, launch, resolve_backend
from kernels.reference import gate_mask_reference, length_mask, philox4x32, philox_keep
from tests.helpers import REPO  # noqa: E402


def _inputs(shape, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen, dtype=dtype) * s for s in (1.0, 2.0, 2.0)]


def _run(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_reference_gradcheck_with_padding_and_dropout():
    x, a, b = (t.requires_grad_() for t in _inputs((2, 5, 7)))
    lengths = torch.tensor([5, 2])
    keep = philox_keep((2, 5, 7), 0.4, seed=3)
    assert torch.autograd.gradcheck(
        lambda x, a, b: gate_mask_reference(x, a, b, lengths, keep, 0.4), (x, a, b))
    assert torch.autograd.gradcheck(lambda x, a, b: gate_mask_reference(x, a, b), (x, a, b))


def test_torch_backend_values_and_zero_padding():
    x, a, b = (t.requires_grad_() for t in _inputs((3, 7, 35)))
    lengths = torch.tensor([7, 4, 0])
    y = gate_mask(x, a, b, lengths, backend="torch")
    expect = x * (torch.sigmoid(a) + torch.sigmoid(b)) / 2
    pad = ~length_mask(lengths, 3, 7, "cpu").expand(3, 7, 35)
    torch.testing.assert_close(y[~pad], expect[~pad])
    y.backward(torch.ones_like(y))
    for t in (y, x.grad, a.grad, b.grad):
        assert (t[pad] == 0).all()
    assert (x.grad[~pad] != 0).all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(p=0.2), "training=True or training=False"),
    (dict(p=1.5, training=True), r"p must be in \[0, 1\]"),
    (dict(backend="cuda"), "backend must be one of"),
    (dict(lengths=torch.tensor([1, 2, 3])), r"lengths must have shape \(2,\)"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    x, a, b = _inputs((2, 3, 4))
    with pytest.raises(ValueError, match=message):
        gate_mask(x, a, b, **kwargs)


def test_shape_mismatch_and_non_float_raise():
    x, a, b = _inputs((2, 3, 4))
    with pytest.raises(ValueError, match="shapes differ"):
        gate_mask(x, a[:, :2], b)
    with pytest.raises(ValueError, match="floating-point"):
        gate_mask(x, a.long(), b)


def test_mixed_dtypes_promote_like_the_reference():
    x, a, b = _inputs((2, 3, 4), torch.float32)
    y = gate_mask(x, a.half(), b.half(), backend="torch")
    assert y.dtype == torch.float32


def test_dropout_torch_backend_eval_deterministic_seeded_and_keep_rate():
    x, a, b = _inputs((4, 50, 300), torch.float32)
    x = x.abs() + 0.1
    plain = gate_mask(x, a, b, backend="torch")
    assert torch.equal(gate_mask(x, a, b, p=0.3, seed=1, training=False), plain)
    y1 = gate_mask(x, a, b, p=0.3, seed=1, training=True)
    assert torch.equal(y1, gate_mask(x, a, b, p=0.3, seed=1, training=True))
    assert not torch.equal(y1, gate_mask(x, a, b, p=0.3, seed=2, training=True))
    torch.manual_seed(5)
    s1 = gate_mask(x, a, b, p=0.3, training=True)
    torch.manual_seed(5)
    assert torch.equal(s1, gate_mask(x, a, b, p=0.3, training=True))
    kept = y1 != 0
    assert abs(kept.double().mean().item() - 0.7) < 0.01  # n = 60000: 5 sigma ~ 0.009
    torch.testing.assert_close(y1[kept], plain[kept] / 0.7)


def test_auto_on_cpu_uses_reference_without_launching():
    before = sum(launch.LAUNCHES.values())
    x, a, b = _inputs((2, 3, 4))
    gate_mask(x, a, b, backend="auto")
    assert resolve_backend("auto", "cpu") == "torch"
    assert sum(launch.LAUNCHES.values()) == before


def test_backend_scope_overrides_auto():
    with backend_scope("torch"):
        assert resolve_backend("auto", "cuda") == "torch"
        assert resolve_backend("triton", "cuda") == "triton" or not launch.available()
    with pytest.raises(ValueError, match="backend must be one of"):
        with backend_scope("gpu"):
            pass


def test_grouped_torch_backend_matches_reference():
    B, T = 3, 7
    lengths = torch.tensor([7, 4, 0])
    groups = [_inputs((B, T, d), seed=d) for d in (74, 35, 33)]
    ys = gate_mask_grouped(*zip(*groups, strict=True), lengths, backend="torch")
    for (x, a, b), y in zip(groups, ys, strict=True):
        torch.testing.assert_close(y, gate_mask_reference(x, a, b, lengths))
    with pytest.raises(ValueError, match=r"share \(B, T\)"):
        gate_mask_grouped([groups[0][0], groups[1][0][:, :5]], [groups[0][1], groups[1][1][:, :5]],
                          [groups[0][2], groups[1][2][:, :5]], backend="torch")


def test_philox_model_matches_random123_known_answers():
    def words(c, k):
        out = philox4x32(*(torch.tensor([v]) for v in c), *k)
        return [int(w) for w in out]
    assert words((0, 0, 0, 0), (0, 0)) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    m = 0xFFFFFFFF
    assert words((m, m, m, m), (m, m)) == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]
    assert words((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0)) \
        == [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]
    keep = philox_keep((60000,), 0.25, seed=11)
    assert abs(keep.double().mean().item() - 0.75) < 0.01


def test_forcing_triton_on_cpu_without_interpreter_is_a_clear_error():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = ("import torch, kernels\n"
            "x = torch.ones(1, 2, 3)\n"
            "try:\n    kernels.gate_mask(x, x, x, backend='triton')\n"
            "except RuntimeError as e:\n    print('ERR', e)\n")
    res = _run(code, env)
    assert res.returncode == 0, res.stderr
    assert "ERR" in res.stdout and "TRITON_INTERPRET=1" in res.stdout


def test_import_and_cpu_work_without_triton():
    code = ("import sys; sys.modules['triton'] = None\n"
            "import torch, kernels\n"
            "x = torch.ones(1, 2, 3)\n"
            "print('Y', kernels.gate_mask(x, x, x).sum().item())\n"
            "try:\n    kernels.gate_mask(x, x, x, backend='triton')\n"
            "except RuntimeError as e:\n    print('ERR', e)\n")
    res = _run(code, dict(os.environ))
    assert res.returncode == 0, res.stderr
    assert "Y 4.38" in res.stdout  # 6 * sigmoid(1) = 4.386
    assert "ERR triton is not usable here" in res.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA exit")
@pytest.mark.parametrize("module", ["benchmarks.kernel", "benchmarks.check_gpu"])
def test_gpu_scripts_skip_cleanly_without_cuda(module, tmp_path):
    res = subprocess.run([sys.executable, "-m", module, "--out", str(tmp_path),
                          "--json", str(tmp_path / "elsewhere" / "r.json"),
                          "--log-level", "DEBUG"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "no CUDA device; skipped" in res.stdout
    assert list(tmp_path.iterdir()) == []
