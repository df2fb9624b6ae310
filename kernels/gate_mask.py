"""Functional entry points for the fused gate-and-mask op (MMLatch's top-down masking).

    y = x * dropout((sigmoid(a) + sigmoid(b)) / 2),   y[b, t] = 0 for t >= lengths[b]

Layers, as in Liger-Kernel: @triton.jit kernels (kernels._gate_mask_jit) -> launchers
(kernels.launch) -> one torch.autograd.Function per op (here) -> functional entry points (here).
Nothing in this module touches triton. The autograd Functions save only their inputs (x, a, b,
lengths) and the dropout seed; the backward is one fused pass that recomputes the sigmoids.

Dropout: F.dropout semantics on the mask (kept entries scaled by 1 / (1 - p)), applied only when
training=True, which must be passed explicitly whenever p > 0 (eval is deterministic). For a
given seed the mask is reproducible. The stream depends on the backend: the Triton kernels draw
Philox-4x32-10 at each element's flat offset (reproduced bit-exactly by
kernels.reference.philox_keep); the torch backend draws from a torch.Generator (fast on CPU).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

import torch

from kernels import launch
from kernels.reference import gate_mask_reference, torch_keep_mask

BACKENDS = ("auto", "triton", "torch")
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_override: contextvars.ContextVar[str | None] = contextvars.ContextVar("gate_mask_backend",
                                                                       default=None)


@contextlib.contextmanager
def backend_scope(backend: str) -> Iterator[None]:
    """Within the block (same thread/context), calls with backend="auto" use `backend`.
    Used to run a whole model on the Triton path and then on the reference to compare."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    token = _override.set(backend)
    try:
        yield
    finally:
        _override.reset(token)


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """'triton' or 'torch' for tensors on `device`; raises a clear error when Triton is forced
    but cannot run there."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = _override.get() or "auto"
    device = torch.device(device)
    if backend == "torch":
        return "torch"
    if backend == "auto":
        return "triton" if device.type == "cuda" and launch.available() else "torch"
    if not launch.available():
        launch._kernels()  # raises RuntimeError naming the import problem
    if device.type == "cpu" and not launch.interpreted():
        raise RuntimeError(launch.interpreter_hint())
    if device.type not in ("cpu", "cuda"):
        raise RuntimeError(f"backend='triton' supports CUDA (or CPU under the interpreter) "
                           f"tensors, not {device.type}")
    return "triton"


def active_backend(device: torch.device | str = "cuda") -> str:
    """What backend="auto" resolves to for tensors on `device` ('triton' or 'torch')."""
    return resolve_backend("auto", device)


def _dropout_p(p: float, training: bool | None) -> float:
    """Effective dropout probability (0 when off); validates p and the explicit training flag."""
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"gate_mask: dropout p must be in [0, 1], got {p}")
    if p > 0.0 and training is None:
        raise ValueError("gate_mask: p > 0 needs training=True or training=False passed "
                         "explicitly (dropout only when training; eval must be deterministic)")
    return p if (p > 0.0 and training) else 0.0


def _seed(seed: int | None, p: float) -> int | None:
    if p == 0.0:
        return None
    if seed is None:  # drawn from torch's default RNG, so torch.manual_seed controls it
        return int(torch.randint(0, 2**31 - 1, (1,)).item())
    seed = int(seed)
    if not 0 <= seed < 2**63:
        raise ValueError(f"gate_mask: seed must be in [0, 2**63), got {seed}")
    return seed


def _check_group(x, a, b, lengths, where: str = "") -> tuple[int, int]:
    for name, t in (("x", x), ("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor) or t.dim() != 3:
            raise ValueError(f"gate_mask{where}: {name} must be a (B, T, D) tensor, got "
                             f"{getattr(t, 'shape', type(t))}")
    if a.shape != x.shape or b.shape != x.shape:
        raise ValueError(f"gate_mask{where}: x, a, b shapes differ: {tuple(x.shape)}, "
                         f"{tuple(a.shape)}, {tuple(b.shape)}")
    if a.device != x.device or b.device != x.device:
        raise ValueError(f"gate_mask{where}: x, a, b devices differ")
    if not all(t.dtype.is_floating_point for t in (x, a, b)):
        raise ValueError(f"gate_mask{where}: needs floating-point tensors, got {x.dtype}, "
                         f"{a.dtype}, {b.dtype}")
    if lengths is not None and tuple(lengths.shape) != (x.shape[0],):
        raise ValueError(f"gate_mask{where}: lengths must have shape ({x.shape[0]},), "
                         f"got {tuple(lengths.shape)}")
    return x.shape[0], x.shape[1]


def _out_dtype(x, a, b) -> torch.dtype:
    """The output dtype: PyTorch type promotion of x, a, b (as the reference's x * mask)."""
    return torch.promote_types(torch.promote_types(x.dtype, a.dtype), b.dtype)


def _pick(backend: str, device, tensors) -> str:
    """resolve_backend, plus: the kernels take float32/float16/bfloat16 only; "auto" falls back
    to the reference for other dtypes (float64), a forced "triton" raises."""
    chosen = resolve_backend(backend, device)
    if chosen == "triton" and any(t.dtype not in KERNEL_DTYPES for t in tensors):
        if backend == "triton":
            raise ValueError(f"backend='triton' supports {KERNEL_DTYPES}, got "
                             f"{sorted({str(t.dtype) for t in tensors})}")
        return "torch"
    return chosen


def _lengths_for_kernel(lengths, device):
    if lengths is None:
        return None
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise ValueError(f"gate_mask: lengths must be integers, got {lengths.dtype}")
    return lengths.to(device=device, dtype=torch.int32).contiguous()


class _GateMaskFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, a, b, lengths, p, seed):
        x, a, b = x.contiguous(), a.contiguous(), b.contiguous()
        ctx.save_for_backward(x, a, b, lengths)
        ctx.p, ctx.seed = p, seed
        return launch.gate_mask_fwd(x, a, b, lengths, p, seed, out_dtype=_out_dtype(x, a, b))

    @staticmethod
    def backward(ctx, g):
        x, a, b, lengths = ctx.saved_tensors
        need_dx = ctx.needs_input_grad[0]
        need_dab = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        dx, da, db = launch.gate_mask_bwd(g.contiguous(), x, a, b, lengths, ctx.p, ctx.seed,
                                          need_dx=need_dx, need_dab=need_dab)
        return dx, da, db, None, None, None


class _GateMaskGroupedFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, lengths, p, seed, *flat):
        k = len(flat) // 3
        xs, as_, bs = ([t.contiguous() for t in flat[i * k:(i + 1) * k]] for i in range(3))
        ctx.save_for_backward(lengths, *xs, *as_, *bs)
        ctx.p, ctx.seed, ctx.k = p, seed, k
        return tuple(launch.gate_mask_fwd_grouped(
            xs, as_, bs, lengths, p, seed,
            out_dtypes=[_out_dtype(*grp) for grp in zip(xs, as_, bs, strict=True)]))

    @staticmethod
    def backward(ctx, *gs):
        lengths, *flat = ctx.saved_tensors
        k = ctx.k
        xs, as_, bs = flat[:k], flat[k:2 * k], flat[2 * k:]
        dxs, das, dbs = launch.gate_mask_bwd_grouped([g.contiguous() for g in gs], xs, as_, bs,
                                                     lengths, ctx.p, ctx.seed)
        return (None, None, None, *dxs, *das, *dbs)


def gate_mask(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
              lengths: torch.Tensor | None = None, p: float = 0.0, seed: int | None = None,
              backend: str = "auto", training: bool | None = None) -> torch.Tensor:
    """y = x * dropout((sigmoid(a) + sigmoid(b)) / 2), zero (output and gradients) at
    t >= lengths[b].

    x, a, b: (B, T, D) on one device; float32/16/bf16 for the kernels (float64 uses the
    reference under "auto"); y has their promoted dtype, each gradient its input's dtype.
    lengths: (B,) integer steps, or None.
    p: dropout probability on the mask, used only when training=True; training must be given
    explicitly when p > 0. seed: reproducible dropout (None: drawn from torch's RNG).
    backend: "auto" (Triton on CUDA, torch reference otherwise), "triton" (on CPU only under
    TRITON_INTERPRET=1), or "torch".
    """
    _check_group(x, a, b, lengths)
    p_eff = _dropout_p(p, training)
    seed_eff = _seed(seed, p_eff)
    if _pick(backend, x.device, (x, a, b)) == "torch":
        keep = None
        if p_eff > 0.0:
            keep = torch_keep_mask(x.shape, p_eff, seed_eff, x.device)
        return gate_mask_reference(x, a, b, lengths, keep, p_eff)
    return _GateMaskFn.apply(x, a, b, _lengths_for_kernel(lengths, x.device), p_eff, seed_eff)


def gate_mask_grouped(xs: Sequence[torch.Tensor], as_: Sequence[torch.Tensor],
                      bs: Sequence[torch.Tensor], lengths: torch.Tensor | None = None,
                      p: float = 0.0, seed: int | None = None, backend: str = "auto",
                      training: bool | None = None) -> tuple[torch.Tensor, ...]:
    """gate_mask for up to three modalities (same B, T and lengths; each its own D and dtype)
    in ONE forward launch and ONE backward launch on the Triton path.

    Returns one output per modality. With dropout, modality k draws the Philox counters that
    follow those of modalities 0..k-1 (Triton path); the torch backend draws the modalities in
    order from one torch.Generator seeded with `seed`.
    """
    xs, as_, bs = list(xs), list(as_), list(bs)
    if not (len(xs) == len(as_) == len(bs)) or not 1 <= len(xs) <= 3:
        raise ValueError(f"gate_mask_grouped: needs 1 to 3 (x, a, b) groups of equal count, got "
                         f"{len(xs)}, {len(as_)}, {len(bs)}")
    shape_bt = None
    for i, (x, a, b) in enumerate(zip(xs, as_, bs, strict=True)):
        bt = _check_group(x, a, b, lengths, where=f"_grouped[{i}]")
        if shape_bt is not None and bt != shape_bt:
            raise ValueError(f"gate_mask_grouped: all groups must share (B, T); group {i} has "
                             f"{bt}, group 0 has {shape_bt}")
        if x.device != xs[0].device:
            raise ValueError("gate_mask_grouped: all groups must be on one device")
        shape_bt = bt
    p_eff = _dropout_p(p, training)
    seed_eff = _seed(seed, p_eff)
    device = xs[0].device
    if _pick(backend, device, xs + as_ + bs) == "torch":
        gen = None
        if p_eff > 0.0:
            gen = torch.Generator(device=device)
            gen.manual_seed(seed_eff)
        out = []
        for x, a, b in zip(xs, as_, bs, strict=True):
            keep = None
            if gen is not None:
                keep = torch.rand(x.shape, generator=gen, device=device) >= p_eff
            out.append(gate_mask_reference(x, a, b, lengths, keep, p_eff))
        return tuple(out)
    return _GateMaskGroupedFn.apply(_lengths_for_kernel(lengths, device), p_eff, seed_eff,
                                    *xs, *as_, *bs)
