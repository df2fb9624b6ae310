"""Pure-PyTorch reference for the gate-and-mask op (the ground truth for the Triton kernels)."""

from __future__ import annotations

import torch


def length_mask(lengths: torch.Tensor | None, batch: int, steps: int, device) -> torch.Tensor | None:
    """(B, T, 1) float mask: 1 for t < lengths[b], 0 for padding. None when lengths is None."""
    if lengths is None:
        return None
    t = torch.arange(steps, device=device)
    return (t[None, :] < lengths.to(device)[:, None]).unsqueeze(-1)


def gate_mask_reference(
    x: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    lengths: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
    p: float = 0.0,
) -> torch.Tensor:
    """y = x * dropout((sigmoid(a) + sigmoid(b)) / 2), zero at padded steps.

    keep: optional (B, T, D) bool dropout keep-mask; kept entries are scaled by 1 / (1 - p).
    """
    mask = (torch.sigmoid(a) + torch.sigmoid(b)) * 0.5
    if keep is not None and p > 0.0:
        mask = mask * keep.to(mask.dtype) / (1.0 - p)
    y = x * mask
    pad = length_mask(lengths, x.shape[0], x.shape[1], x.device)
    if pad is not None:
        y = y * pad.to(y.dtype)
    return y
