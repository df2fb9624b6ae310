"""Building blocks shared by the models: padding helpers, the BiLSTM + self-attention
encoder that MMLatch specifies, attention layers, and the sentiment head.

Shapes: B batch, T steps, D features. ``lengths`` (B,) int64 counts the valid steps of each
sequence; steps at t >= lengths[b] are padding and every block here leaves them at zero.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

SENTIMENT_RANGE = 3.0


def step_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, T) bool, True at valid steps."""
    t = torch.arange(steps, device=lengths.device)
    return t[None, :] < lengths[:, None]


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the valid steps of (B, T, ...) -> (B, ...)."""
    valid = step_mask(lengths, x.shape[1]).to(x.dtype)
    valid = valid.reshape(*valid.shape, *([1] * (x.dim() - 2)))
    return (x * valid).sum(1) / valid.sum(1).clamp(min=1.0)


def safe_lengths(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """Lengths clamped to [1, T]: an empty sequence is read as one all-zero step."""
    return lengths.clamp(min=1, max=max(steps, 1))


def _zero_input_lstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """`lstm` over an all-zero padded batch (B, T, D) -> (B, T, dirs * hidden), zero at
    padding, from one full-length zero sequence."""
    batch, steps = x.shape[0], x.shape[1]
    one, _ = lstm(x[:1].new_zeros(1, steps, x.shape[2]))  # (1, T, dirs * H)
    h = lstm.hidden_size
    t = torch.arange(steps, device=x.device)[None, :].expand(batch, -1)
    valid = step_mask(lengths, steps)
    fwd = one[0, :, :h][t]
    if not lstm.bidirectional:
        return fwd * valid[..., None].to(fwd.dtype)
    # backward state at step t of a row of length L has seen L - t steps: the full-length
    # sequence's backward output at step T - L + t
    shifted = (t + steps - lengths[:, None].to(t.device)).clamp(0, steps - 1)
    bwd = one[0, :, h:][shifted]
    return torch.cat([fwd, bwd], dim=-1) * valid[..., None].to(fwd.dtype)


class SequenceLSTM(nn.Module):
    """An LSTM over padded sequences (packed, so padding never reaches the state).

    bidirectional: the two directions' outputs are summed (MMLatch's merge), so the output
    size is ``hidden`` either way. Output (B, T, hidden), zero at padding.

    zero_input_shortcut (off by default; the model config option of the same name, set by
    ``models.train --zero-input-shortcut``): an all-zero input batch (an absent modality, e.g.
    mosi-text's audio and video) runs as ONE zero sequence of the batch's full length and
    every row's outputs are gathered from it. Same maths: with zero inputs a forward state
    depends only on the step index and a backward state only on the steps left to the row's
    end. Outputs agree with the normal path to float rounding (tested); gradients reach the
    same weights.
    """

    def __init__(self, input_size: int, hidden: int, bidirectional: bool, dropout: float,
                 zero_input_shortcut: bool = False):
        super().__init__()
        self.hidden = hidden
        self.bidirectional = bidirectional
        self.zero_input_shortcut = zero_input_shortcut
        self.lstm = nn.LSTM(input_size, hidden, batch_first=True, bidirectional=bidirectional)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        steps = x.shape[1]
        if self.zero_input_shortcut and not bool(torch.any(x)):
            out = _zero_input_lstm(self.lstm, x, lengths)
        else:
            packed = pack_padded_sequence(
                x, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            out, _ = self.lstm(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=steps)
        if self.bidirectional:
            out = out[..., : self.hidden] + out[..., self.hidden :]
        return self.drop(out)


class Attention(nn.Module):
    """Scaled dot-product attention with separate key/query/value projections (no bias),
    keys masked at padding; queries at padded steps give zero.

    forward(x, queries=None, lengths) -> (B, T, size): values and keys from x, queries from
    ``queries`` (self-attention when None).
    """

    def __init__(self, size: int, dropout: float, input_size: int | None = None):
        super().__init__()
        input_size = input_size or size
        self.scale = 1.0 / math.sqrt(input_size)
        self.k = nn.Linear(input_size, size, bias=False)
        self.q = nn.Linear(input_size, size, bias=False)
        self.v = nn.Linear(input_size, size, bias=False)
        self.drop = nn.Dropout(dropout)
        for lin in (self.k, self.q, self.v):
            nn.init.xavier_uniform_(lin.weight)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor,
                queries: torch.Tensor | None = None) -> torch.Tensor:
        q = self.q(x if queries is None else queries)
        scores = torch.bmm(q, self.k(x).transpose(1, 2)) * self.scale
        valid = step_mask(lengths, x.shape[1])
        scores = scores.masked_fill(~valid[:, None, :], float("-inf"))
        weights = self.drop(torch.softmax(scores, dim=-1))
        out = torch.bmm(weights, self.v(x))
        return out * valid[..., None].to(out.dtype)


class AttentiveEncoder(nn.Module):
    """MMLatch's unimodal encoder: BiLSTM (directions summed) then self-attention over time.
    (B, T, D_in) -> (B, T, hidden). ``zero_input_shortcut``: see `SequenceLSTM`."""

    def __init__(self, input_size: int, hidden: int, dropout: float,
                 zero_input_shortcut: bool = False):
        super().__init__()
        self.rnn = SequenceLSTM(input_size, hidden, bidirectional=True, dropout=dropout,
                                zero_input_shortcut=zero_input_shortcut)
        self.attention = Attention(hidden, dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.attention(self.rnn(x, lengths), lengths)


class SymmetricCrossAttention(nn.Module):
    """Two-way cross-modal attention as in the MMLatch fuser: a's values attended with b's
    queries, and b's with a's, each with a residual from the querying modality (ViLBERT
    style). Returns their sum, (B, T, size)."""

    def __init__(self, size: int, dropout: float):
        super().__init__()
        self.a_from_b = Attention(size, dropout)
        self.b_from_a = Attention(size, dropout)

    def forward(self, a: torch.Tensor, b: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        a_att = self.a_from_b(a, lengths, queries=b) + b
        b_att = self.b_from_a(b, lengths, queries=a) + a
        return a_att + b_att


class SentimentHead(nn.Module):
    """Features (B, T, F) -> sentiment.

    per_step=False: masked mean over time, then the head: returns ((B,), None).
    per_step=True: the head at every step: returns (mean of valid steps (B,), (B, T)).
    hidden=0 gives a single Linear layer (MMLatch's classifier), otherwise a one-hidden-layer
    MLP. The raw value trains the L1 loss; in eval() it is clipped to the label range [-3, 3].
    """

    def __init__(self, in_features: int, hidden: int, dropout: float, per_step: bool):
        super().__init__()
        self.per_step = per_step
        if hidden > 0:
            self.net = nn.Sequential(
                nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
            )
        else:
            self.net = nn.Linear(in_features, 1)

    def _bound(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.training else y.clamp(-SENTIMENT_RANGE, SENTIMENT_RANGE)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor):
        if not self.per_step:
            return self._bound(self.net(masked_mean(features, lengths)).squeeze(-1)), None
        steps = self.net(features).squeeze(-1)
        steps = steps * step_mask(lengths, features.shape[1]).to(steps.dtype)
        seq = steps.sum(1) / lengths.clamp(min=1).to(steps.dtype)
        return self._bound(seq), self._bound(steps)

