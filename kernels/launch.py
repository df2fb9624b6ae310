"""Plain launcher functions for the gate-and-mask Triton kernels (the only layer that touches
triton, which it imports lazily: ``import kernels`` works where triton is absent or broken).

Each launcher takes contiguous tensors, allocates outputs, launches exactly one kernel and
counts it in ``LAUNCHES`` (read by the tests to prove the Triton path ran).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence

import torch

from kernels.reference import dropout_scale, dropout_threshold, rng_offsets

BLOCK = 1024  # elements per program (power of two); 8 fp32 per thread at 4 warps
NUM_WARPS = 4
MAX_ELEMENTS = 2**31 - 1  # flat offsets and dropout counters are int32
LAUNCHES: Counter[str] = Counter()

_jit = None
_import_error: str | None = None


def _kernels():
    """The jit module, imported on first use; raises RuntimeError when triton is unusable."""
    global _jit, _import_error
    if _jit is None and _import_error is None:
        try:
            from kernels import _gate_mask_jit
            _jit = _gate_mask_jit
        except Exception as exc:  # ImportError, or a broken triton install
            _import_error = f"{type(exc).__name__}: {exc}"
    if _jit is None:
        raise RuntimeError(f"triton is not usable here ({_import_error}); "
                           "pip install triton, or use backend='torch'")
    return _jit


def available() -> bool:
    """True when triton imports and the kernels compile to launchable objects."""
    try:
        _kernels()
    except RuntimeError:
        return False
    return True


def interpreted() -> bool:
    """True when the kernels run under Triton's CPU interpreter (TRITON_INTERPRET=1 was set
    before they were first imported)."""
    if not available():
        return False
    return type(_kernels().gate_mask_fwd_kernel).__name__ == "InterpretedFunction"


def interpreter_hint() -> str:
    env = os.environ.get("TRITON_INTERPRET")
    return ("backend='triton' on CPU tensors needs Triton's interpreter: set TRITON_INTERPRET=1 "
            "in the environment before triton is imported (e.g. `TRITON_INTERPRET=1 python ...`)"
            f"; TRITON_INTERPRET is {env!r} and the kernels were compiled for a GPU")


def _dropout_args(p: float, seed: int | None) -> tuple[bool, int, int, float]:
    if p <= 0.0:
        return False, 0, 0, 1.0
    if seed is None or seed < 0:
        raise ValueError(f"dropout needs a seed >= 0, got {seed}")
    return True, int(seed), dropout_threshold(p), dropout_scale(p)


def _check_size(n: int) -> None:
    if n > MAX_ELEMENTS:
        raise ValueError(f"gate_mask kernels index with int32: {n} elements > {MAX_ELEMENTS}")


def _grid(n: int, block: int) -> int:
    return max(1, -(-n // block))


def gate_mask_fwd(x, a, b, lengths, p: float = 0.0, seed: int | None = None,
                  block: int = BLOCK, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """y = x * dropout(mean(sigmoid(a), sigmoid(b))) with padding zeroed; one launch."""
    jit = _kernels()
    B, T, D = x.shape
    n = x.numel()
    _check_size(n)
    drop, seed_i, thr, scale = _dropout_args(p, seed)
    y = torch.empty_like(x, dtype=out_dtype or x.dtype)
    if n == 0:
        return y
    has_len = lengths is not None
    jit.gate_mask_fwd_kernel[(_grid(n, block),)](
        x, a, b, y, lengths if has_len else x, n, D, T, seed_i, thr, scale,
        HAS_LENGTHS=has_len, HAS_DROPOUT=drop, BLOCK=block, num_warps=NUM_WARPS)
    LAUNCHES["fwd"] += 1
    return y


def gate_mask_bwd(g, x, a, b, lengths, p: float = 0.0, seed: int | None = None,
                  need_dx: bool = True, need_dab: bool = True, block: int = BLOCK):
    """(dx, da, db) in one fused pass that recomputes the sigmoids (None where not needed)."""
    jit = _kernels()
    B, T, D = x.shape
    n = x.numel()
    drop, seed_i, thr, scale = _dropout_args(p, seed)
    dx = torch.empty_like(x) if need_dx else None
    da = torch.empty_like(a) if need_dab else None
    db = torch.empty_like(b) if need_dab else None
    if n == 0 or not (need_dx or need_dab):
        return dx, da, db
    has_len = lengths is not None
    jit.gate_mask_bwd_kernel[(_grid(n, block),)](
        g, x, a, b, dx if need_dx else x, da if need_dab else x, db if need_dab else x,
        lengths if has_len else x, n, D, T, seed_i, thr, scale,
        HAS_LENGTHS=has_len, HAS_DROPOUT=drop, NEED_DX=need_dx, NEED_DAB=need_dab,
        BLOCK=block, num_warps=NUM_WARPS)
    LAUNCHES["bwd"] += 1
    return dx, da, db


def _group_layout(xs: Sequence[torch.Tensor], block: int):
    """Program ranges and dropout counter bases for up to three groups."""
    if not 1 <= len(xs) <= 3:
        raise ValueError(f"grouped gate_mask takes 1 to 3 groups, got {len(xs)}")
    ns = [x.numel() for x in xs] + [0] * (3 - len(xs))
    _check_size(sum(ns))
    blocks = [-(-n // block) for n in ns]
    start1, start2 = blocks[0], blocks[0] + blocks[1]
    _, rng1, rng2 = rng_offsets(ns)
    return ns, start1, start2, sum(blocks), rng1, rng2


def gate_mask_fwd_grouped(xs, as_, bs, lengths, p: float = 0.0, seed: int | None = None,
                          block: int = BLOCK, out_dtypes=None) -> list[torch.Tensor]:
    """gate_mask_fwd for every group in ONE launch. Group k's dropout draws follow those of
    groups 0..k-1 (bases: kernels.reference.rng_offsets)."""
    jit = _kernels()
    ns, start1, start2, total, rng1, rng2 = _group_layout(xs, block)
    drop, seed_i, thr, scale = _dropout_args(p, seed)
    out_dtypes = out_dtypes or [x.dtype for x in xs]
    ys = [torch.empty_like(x, dtype=dt) for x, dt in zip(xs, out_dtypes, strict=True)]
    if total == 0:
        return ys
    T = xs[0].shape[1]
    pad = 3 - len(xs)
    args = []
    for x, a, b, y, n in zip([*xs] + [xs[0]] * pad, [*as_] + [xs[0]] * pad,
                             [*bs] + [xs[0]] * pad, ys + [xs[0]] * pad, ns, strict=True):
        args += [x, a, b, y, n, x.shape[2]]
    has_len = lengths is not None
    jit.gate_mask_fwd_grouped_kernel[(total,)](
        *args, lengths if has_len else xs[0], T, start1, start2, rng1, rng2, seed_i, thr, scale,
        HAS_LENGTHS=has_len, HAS_DROPOUT=drop, BLOCK=block, num_warps=NUM_WARPS)
    LAUNCHES["fwd_grouped"] += 1
    return ys


def gate_mask_bwd_grouped(gs, xs, as_, bs, lengths, p: float = 0.0, seed: int | None = None,
                          block: int = BLOCK):
    """All groups' (dx, da, db) in ONE fused launch; returns three lists."""
    jit = _kernels()
    ns, start1, start2, total, rng1, rng2 = _group_layout(xs, block)
    drop, seed_i, thr, scale = _dropout_args(p, seed)
    dxs = [torch.empty_like(x) for x in xs]
    das = [torch.empty_like(a) for a in as_]
    dbs = [torch.empty_like(b) for b in bs]
    if total == 0:
        return dxs, das, dbs
    T = xs[0].shape[1]
    pad = [xs[0]] * (3 - len(xs))
    args = []
    for g, x, a, b, dx, da, db, n in zip([*gs] + pad, [*xs] + pad, [*as_] + pad, [*bs] + pad,
                                         dxs + pad, das + pad, dbs + pad, ns, strict=True):
        args += [g, x, a, b, dx, da, db, n, x.shape[2]]
    has_len = lengths is not None
    jit.gate_mask_bwd_grouped_kernel[(total,)](
        *args, lengths if has_len else xs[0], T, start1, start2, rng1, rng2, seed_i, thr, scale,
        HAS_LENGTHS=has_len, HAS_DROPOUT=drop, BLOCK=block, num_warps=NUM_WARPS)
    LAUNCHES["bwd_grouped"] += 1
    return dxs, das, dbs
