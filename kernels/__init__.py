"""Custom GPU kernels, each with a pure-PyTorch reference.

`gate_mask` is MMLatch's top-down step ``y = x * (sigmoid(a) + sigmoid(b)) / 2`` with padding
and optional mask dropout, fused into one Triton pass on CUDA. Only this package imports triton.
"""

from kernels.gate_mask import gate_mask

__all__ = ["gate_mask"]
