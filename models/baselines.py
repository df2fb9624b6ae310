"""MulT-style cross-modal Transformer baseline (Tsai et al., ACL 2019), a compact version.

Each modality is projected to ``d_model`` (a 1-D convolution over time, as in MulT), gets
sinusoidal positions, then for every target modality two cross-modal Transformers let it attend
to each of the other two modalities (queries from the target, keys/values from the source). The
two results are concatenated (2 * d) and refined by a self-attention Transformer; the three
targets' sequences are concatenated (6 * d) into an MLP head. Padding is masked throughout;
the sequence readout is the mean over valid steps (MulT takes the last step, which assumes
unpadded sequences).

The other two baselines, late fusion and text-only, are `models.mmlatch.MMLatch` configured
without feedback, with the late-fusion head and a modality subset (see models.registry): one
class, not copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from models.base import MODALITIES, InputDims, ModelOutput, check_dims
from models.layers import SentimentHead, safe_lengths, step_mask


@dataclass(frozen=True)
class MulTConfig:
    dims: InputDims
    d_model: int = 32
    heads: int = 4
    layers: int = 2
    dropout: float = 0.1
    head_hidden: int = 64
    per_step: bool = False
    name: str = "mult"  # the registry name (models.registry); not saved in config.json
    # accepted like every model's execution option; MulT has no LSTM, so it changes nothing
    zero_input_shortcut: bool = False

    def __post_init__(self) -> None:
        if self.d_model % self.heads:
            raise ValueError("d_model must be divisible by heads")


def sinusoid(steps: int, size: int, device) -> torch.Tensor:
    pos = torch.arange(steps, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, size, 2, device=device) * (-math.log(10000.0) / size))
    table = torch.zeros(steps, size, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: size // 2])
    return table


class CrossBlock(nn.Module):
    """Pre-norm Transformer layer whose attention reads keys/values from ``source``."""

    def __init__(self, size: int, heads: int, dropout: float):
        super().__init__()
        self.norm_q = nn.LayerNorm(size)
        self.norm_kv = nn.LayerNorm(size)
        self.attn = nn.MultiheadAttention(size, heads, dropout=dropout, batch_first=True)
        self.norm_ff = nn.LayerNorm(size)
        self.ff = nn.Sequential(
            nn.Linear(size, 4 * size), nn.ReLU(), nn.Dropout(dropout), nn.Linear(4 * size, size)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, target: torch.Tensor, source: torch.Tensor, pad: torch.Tensor):
        kv = self.norm_kv(source)
        att, _ = self.attn(self.norm_q(target), kv, kv, key_padding_mask=pad, need_weights=False)
        x = target + self.drop(att)
        return x + self.drop(self.ff(self.norm_ff(x)))


class CrossStack(nn.Module):
    def __init__(self, size: int, heads: int, layers: int, dropout: float):
        super().__init__()
        self.blocks = nn.ModuleList(CrossBlock(size, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(size)

    def forward(self, target, source, pad):
        for block in self.blocks:
            target = block(target, source, pad)
        return self.norm(target)


class MulT(nn.Module):
    def __init__(self, config: MulTConfig):
        super().__init__()
        self.config = config
        c = config
        sizes = dict(zip(MODALITIES, c.dims.as_tuple(), strict=True))
        self.proj = nn.ModuleDict(
            {m: nn.Conv1d(sizes[m], c.d_model, kernel_size=1, bias=False) for m in MODALITIES}
        )
        self.cross = nn.ModuleDict()
        for t in MODALITIES:
            for s in MODALITIES:
                if s != t:
                    self.cross[f"{t}_from_{s}"] = CrossStack(
                        c.d_model, c.heads, c.layers, c.dropout
                    )
        self.self_attn = nn.ModuleDict(
            {m: CrossStack(2 * c.d_model, c.heads, c.layers, c.dropout) for m in MODALITIES}
        )
        self.head = SentimentHead(6 * c.d_model, c.head_hidden, c.dropout, c.per_step)

    def forward(self, text: torch.Tensor, audio: torch.Tensor, video: torch.Tensor,
                lengths: torch.Tensor) -> ModelOutput:
        c = self.config
        check_dims(c.dims, InputDims(text.shape[-1], audio.shape[-1], video.shape[-1]), "MulT")
        steps = text.shape[1]
        lengths = safe_lengths(lengths, steps)
        valid = step_mask(lengths, steps)
        pad = ~valid
        pos = sinusoid(steps, c.d_model, text.device)
        h = {}
        for m, x in zip(MODALITIES, (text, audio, video), strict=True):
            h[m] = self.proj[m](x.transpose(1, 2)).transpose(1, 2) * math.sqrt(c.d_model) + pos
        outs = []
        for t in MODALITIES:
            pair = [self.cross[f"{t}_from_{s}"](h[t], h[s], pad) for s in MODALITIES if s != t]
            y = torch.cat(pair, dim=-1)
            outs.append(self.self_attn[t](y, y, pad))
        features = torch.cat(outs, dim=-1) * valid[..., None].to(text.dtype)
        sentiment, per_step = self.head(features, lengths)
        return ModelOutput(sentiment=sentiment, per_step=per_step)
