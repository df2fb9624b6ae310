"""Custom GPU kernels, each with a pure-PyTorch reference.

`gate_mask` is MMLatch's top-down step ``y = x * (sigmoid(a) + sigmoid(b)) / 2`` with padding
and optional mask dropout, fused into one Triton pass (forward and backward) on CUDA;
`gate_mask_grouped` masks all modalities in one launch. Only this package imports triton, and
only lazily (kernels.launch), so ``import kernels`` works without it.
"""

from kernels.gate_mask import (
    BACKENDS,
    active_backend,
    backend_scope,
    gate_mask,
    gate_mask_grouped,
    resolve_backend,
)

__all__ = ["BACKENDS", "active_backend", "backend_scope", "gate_mask", "gate_mask_grouped",
           "resolve_backend"]
