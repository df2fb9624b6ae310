"""Pure-PyTorch reference for the gate-and-mask op (the ground truth for the Triton kernels).

Also holds a bit-exact PyTorch model of the Triton path's dropout stream (Philox-4x32-10, the
generator behind ``tl.randint4x``: one call per 4 consecutive elements), so tests can compare
the fused kernel with dropout on against this reference element for element.
"""

from __future__ import annotations

import torch

_U32 = 0xFFFFFFFF
_KEY_A, _KEY_B = 0x9E3779B9, 0xBB67AE85  # Philox-4x32 key increments (Weyl constants)
_ROUND_A, _ROUND_B = 0xD2511F53, 0xCD9E8D57  # Philox-4x32 round multipliers
PHILOX_ROUNDS = 10
RNG_BITS = 24  # the kernels keep an entry when (randint >> 8) >= threshold (24-bit uniform)


def length_mask(lengths: torch.Tensor | None, batch: int, steps: int,
                device) -> torch.Tensor | None:
    """(B, T, 1) bool mask: True for t < lengths[b], False for padding. None without lengths."""
    if lengths is None:
        return None
    t = torch.arange(steps, device=device)
    return (t[None, :] < lengths.to(device)[:, None]).unsqueeze(-1)


def dropout_scale(p: float) -> float:
    """Factor applied to kept entries: 1 / (1 - p), and 0 when p == 1 (everything dropped)."""
    return 0.0 if p >= 1.0 else 1.0 / (1.0 - p)


def gate_mask_reference(
    x: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    lengths: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
    p: float = 0.0,
) -> torch.Tensor:
    """y = x * dropout((sigmoid(a) + sigmoid(b)) / 2), zero at padded steps (t >= lengths[b]).

    keep: optional (B, T, D) bool dropout keep-mask; kept entries are scaled by 1 / (1 - p).
    Plain differentiable torch ops: autograd gives the reference gradients.
    """
    mask = (torch.sigmoid(a) + torch.sigmoid(b)) * 0.5
    if keep is not None and p > 0.0:
        mask = mask * (keep.to(mask.dtype) * dropout_scale(p))
    y = x * mask
    pad = length_mask(lengths, x.shape[0], x.shape[1], x.device)
    if pad is not None:
        y = y * pad.to(y.dtype)
    return y


def torch_keep_mask(shape, p: float, seed: int, device) -> torch.Tensor:
    """The torch backend's dropout keep-mask: fast torch.Generator stream (not Philox)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return torch.rand(shape, generator=gen, device=device) >= p


# --------------------------------------------------------------------------- Philox model


def _mulhilo(m: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32-bit halves of m * x for m < 2**32 and int64 x < 2**32, without overflow."""
    x_hi, x_lo = x >> 16, x & 0xFFFF
    p_hi, p_lo = m * x_hi, m * x_lo  # each < 2**48
    hi = (p_hi + (p_lo >> 16)) >> 16
    lo = (((p_hi & 0xFFFF) << 16) + p_lo) & _U32
    return hi, lo


def philox4x32(c0, c1, c2, c3, k0: int, k1: int, rounds: int = PHILOX_ROUNDS):
    """Philox-4x32 (Salmon et al. 2011) on int64 tensors holding uint32 values; returns 4 words."""
    for _ in range(rounds):
        hi_b, lo_b = _mulhilo(_ROUND_B, c2)
        hi_a, lo_a = _mulhilo(_ROUND_A, c0)
        c0, c1, c2, c3 = hi_b ^ c1 ^ k0, lo_b, hi_a ^ c3 ^ k1, lo_a
        k0, k1 = (k0 + _KEY_A) & _U32, (k1 + _KEY_B) & _U32
    return c0, c1, c2, c3


def philox_randint(seed: int, counters: torch.Tensor) -> torch.Tensor:
    """``tl.randint4x(seed, counters)`` for int32 counters: (4, *counters.shape) int64 holding
    uint32 words."""
    c0 = counters.to(torch.int64) & _U32
    zero = torch.zeros_like(c0)
    return torch.stack(philox4x32(c0, zero, zero, zero, seed & _U32, (seed >> 32) & _U32))


def rng_offsets(numels) -> list[int]:
    """Dropout counter base of each group in a grouped launch: the element counts of the groups
    before it, each rounded up to a multiple of 4 (one Philox call yields 4 draws)."""
    bases, total = [], 0
    for n in numels:
        bases.append(total)
        total += -(-int(n) // 4) * 4
    return bases


def dropout_threshold(p: float) -> int:
    """Integer threshold t: an entry is kept when its 24-bit uniform draw is >= t (P = 1 - p)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout p must be in [0, 1], got {p}")
    return int(round(p * (1 << RNG_BITS)))


def philox_keep(shape, p: float, seed: int, offset: int = 0) -> torch.Tensor:
    """Bit-exact keep-mask of the Triton kernels for a tensor of `shape`. Flat element i has
    draw number c = offset + i (offset: 0, or the group's rng_offsets entry in a grouped
    launch) and uses word c % 4 of Philox-4x32-10 at counter c // 4, keeping its top 24 bits.
    CPU bool tensor of `shape`."""
    if offset % 4:
        raise ValueError(f"offset must be a multiple of 4, got {offset}")
    n = 1
    for dim in shape:
        n *= int(dim)
    c = torch.arange(offset, offset + n, dtype=torch.int64)
    words = philox_randint(seed, torch.unique_consecutive(c // 4))  # (4, n_counters)
    draws = words[c % 4, c // 4 - offset // 4] >> (32 - RNG_BITS)
    return (draws >= dropout_threshold(p)).reshape(tuple(shape))
