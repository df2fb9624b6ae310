"""Functional entry point for the fused gate-and-mask op. (Skeleton: the reference only,
until the Triton kernels land.)"""

from __future__ import annotations

import torch

from kernels.reference import gate_mask_reference


def gate_mask(x, a, b, lengths=None, p: float = 0.0, seed: int | None = None,
              backend: str = "auto", training: bool = False) -> torch.Tensor:
    keep = None
    if training and p > 0.0:
        gen = torch.Generator(device=x.device)
        if seed is not None:
            gen.manual_seed(seed)
        keep = torch.rand(x.shape, generator=gen, device=x.device) >= p
    return gate_mask_reference(x, a, b, lengths, keep, p)
