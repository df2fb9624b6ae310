"""MMLatch (Paraskevopoulos, Georgiou, Potamianos; ICASSP 2022): bottom-up / top-down fusion.

Our implementation of the paper and of the authors' code (georgepar/mmlatch), read there,
written here:

* Encoders. One per modality: a BiLSTM with ``hidden`` = 100 units whose two directions are
  summed, then self-attention over time (scaled dot product, no-bias key/query/value
  projections), dropout 0.2. (B, T, D_m) -> (B, T, hidden).
* Feedback (top-down). A first pass of the encoders gives high-level sequences h_m. For each
  target modality x and each of the two other modalities y, z, a projection p_{x<-y} maps h_y
  to x's input size: a unidirectional LSTM (``feedback_type="lstm"``, the authors'
  "learnable_sequence_mask") or a Linear layer (``"linear"``, their "static" mask). The mask
  is m_x = (sigmoid(p_{x<-y}(h_y)) + sigmoid(p_{x<-z}(h_z))) / 2 in [0, 1], and the masked
  input is x * m_x. That product goes through ``kernels.gate_mask`` (PyTorch reference on CPU,
  the Triton kernel on CUDA), which also zeroes padded steps and applies the mask dropout.
* Second pass. The *same* encoders run again on the masked inputs; only this second pass
  feeds the fusion.
* Fusion. ``fusion="attention"``: the authors' fuser: symmetric cross-attention for each pair
  (text-audio, audio-video, text-video, residual from the querying side, both directions
  summed), an attention over text with the audio-video result as queries, the concatenation
  [t, a, v, ta, tv, av, tav] (7 * hidden) into a BiLSTM (directions concatenated) with
  self-attention, then a Linear layer. ``fusion="late"``: the encoders' outputs concatenated
  into an MLP head (late fusion).
* Mask dropout. The authors call ``F.dropout(mask, p=0.2)`` without ``training=``, so their
  masks are also dropped at inference and predictions are random. Here the dropout is on in
  train() only; eval() is deterministic (tested).

Deviations, all small: padded steps are masked in every attention (the authors' fuser does not
mask); the sequence representation is the mean over valid steps (the authors sum over all
steps, padding included), so live windows of different lengths are comparable.

The same class, configured, gives the late-fusion and text-only baselines and the no-feedback
ablation (see models.registry): ``feedback=False``, ``fusion="late"`` and ``modalities``.
``per_step=True`` adds a per-step output (mosi-utt: one prediction per utterance).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kernels import gate_mask
from models.base import MODALITIES, InputDims, ModelOutput, check_dims
from models.layers import (
    Attention,
    AttentiveEncoder,
    SentimentHead,
    SequenceLSTM,
    SymmetricCrossAttention,
    safe_lengths,
    step_mask,
)

FEEDBACK_TYPES = ("lstm", "linear")
FUSIONS = ("attention", "late")


@dataclass(frozen=True)
class MMLatchConfig:
    dims: InputDims
    hidden: int = 100
    dropout: float = 0.2
    feedback: bool = True
    feedback_type: str = "lstm"
    mask_dropout: float = 0.2
    fusion: str = "attention"
    modalities: tuple[str, ...] = MODALITIES
    head_hidden: int = 100
    per_step: bool = False
    name: str = "mmlatch"  # the registry name (models.registry); not saved in config.json
    # execution option, same maths (models.layers.SequenceLSTM); not saved in config.json
    zero_input_shortcut: bool = False

    def __post_init__(self) -> None:
        if self.feedback_type not in FEEDBACK_TYPES:
            raise ValueError(
                f"feedback_type must be one of {FEEDBACK_TYPES}, got {self.feedback_type!r}"
            )
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        unknown = set(self.modalities) - set(MODALITIES)
        if unknown or not self.modalities:
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}")
        if (self.feedback or self.fusion == "attention") and tuple(self.modalities) != MODALITIES:
            raise ValueError("feedback and the attention fuser need all three modalities")


class FeedbackProjection(nn.Module):
    """h_y (B, T, hidden) -> pre-sigmoid mask logits (B, T, D_x)."""

    def __init__(self, hidden: int, out_size: int, kind: str, dropout: float,
                 zero_input_shortcut: bool = False):
        super().__init__()
        self.kind = kind
        if kind == "lstm":
            self.net = SequenceLSTM(hidden, out_size, bidirectional=False, dropout=dropout,
                                    zero_input_shortcut=zero_input_shortcut)
        else:
            self.net = nn.Linear(hidden, out_size)

    def forward(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.net(h, lengths) if self.kind == "lstm" else self.net(h)


class CrossAttentionFuser(nn.Module):
    """The authors' fuser. Per-step output (B, T, 2 * hidden).

    residual: add the BiLSTM state to the final self-attention's output. Used for per-step
    readouts: with the near-uniform attention weights this layer starts from, the attention
    alone gives every step of a sequence almost the same vector, and per-step predictions
    collapse to the sequence mean (measured on mosi-utt: train L1 stuck at 1.11).
    """

    def __init__(self, hidden: int, dropout: float, residual: bool = False):
        super().__init__()
        self.residual = residual
        self.ta = SymmetricCrossAttention(hidden, 0.1)
        self.av = SymmetricCrossAttention(hidden, 0.1)
        self.tv = SymmetricCrossAttention(hidden, 0.1)
        self.tav = Attention(hidden, 0.1)
        self.rnn = nn.LSTM(7 * hidden, hidden, batch_first=True, bidirectional=True)
        self.rnn_drop = nn.Dropout(dropout)
        self.attention = Attention(2 * hidden, dropout)
        self.out_size = 2 * hidden

    def forward(self, h: dict[str, torch.Tensor], lengths: torch.Tensor) -> torch.Tensor:
        t, a, v = h["text"], h["audio"], h["video"]
        ta = self.ta(t, a, lengths)
        av = self.av(a, v, lengths)
        tv = self.tv(t, v, lengths)
        tav = self.tav(t, lengths, queries=av)
        fused = torch.cat([t, a, v, ta, tv, av, tav], dim=-1)
        steps = fused.shape[1]
        packed = nn.utils.rnn.pack_padded_sequence(
            fused, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=steps)
        out = self.rnn_drop(out)
        att = self.attention(out, lengths)
        return att + out if self.residual else att


class MMLatch(nn.Module):
    def __init__(self, config: MMLatchConfig):
        super().__init__()
        self.config = config
        c = config
        sizes = dict(zip(MODALITIES, c.dims.as_tuple(), strict=True))
        self.encoders = nn.ModuleDict(
            {m: AttentiveEncoder(sizes[m], c.hidden, c.dropout, c.zero_input_shortcut)
             for m in c.modalities}
        )
        self.projections = nn.ModuleDict()
        if c.feedback:
            for x in MODALITIES:
                for y in MODALITIES:
                    if y != x:
                        self.projections[f"{x}_from_{y}"] = FeedbackProjection(
                            c.hidden, sizes[x], c.feedback_type, dropout=0.1,
                            zero_input_shortcut=c.zero_input_shortcut,
                        )
        if c.fusion == "attention":
            self.fuser = CrossAttentionFuser(c.hidden, c.dropout, residual=c.per_step)
            self.head = SentimentHead(self.fuser.out_size, 0, c.dropout, c.per_step)
        else:
            self.fuser = None
            self.head = SentimentHead(
                c.hidden * len(c.modalities), c.head_hidden, c.dropout, c.per_step
            )

    def encode(self, inputs: dict[str, torch.Tensor], lengths: torch.Tensor):
        return {m: self.encoders[m](inputs[m], lengths) for m in self.config.modalities}

    def feedback(self, inputs: dict[str, torch.Tensor], first: dict[str, torch.Tensor],
                 lengths: torch.Tensor):
        """The top-down step: returns (masked inputs, masks), both modality -> (B, T, D_m);
        masks are in [0, 1] and zero at padding."""
        masked, masks = {}, {}
        valid = step_mask(lengths, inputs["text"].shape[1])
        for x in MODALITIES:
            y, z = (m for m in MODALITIES if m != x)
            a = self.projections[f"{x}_from_{y}"](first[y], lengths)
            b = self.projections[f"{x}_from_{z}"](first[z], lengths)
            seed = None
            if self.training and self.config.mask_dropout > 0:
                seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
            masked[x] = gate_mask(
                inputs[x], a, b, lengths=lengths, p=self.config.mask_dropout, seed=seed,
                training=self.training,
            )
            with torch.no_grad():
                mask = (torch.sigmoid(a) + torch.sigmoid(b)) * 0.5
                masks[x] = mask * valid[..., None].to(a.dtype)
        return masked, masks

    def forward(self, text: torch.Tensor, audio: torch.Tensor, video: torch.Tensor,
                lengths: torch.Tensor) -> ModelOutput:
        offered = InputDims(text.shape[-1], audio.shape[-1], video.shape[-1])
        check_dims(self.config.dims, offered, "MMLatch")
        lengths = safe_lengths(lengths, text.shape[1])
        inputs = {"text": text, "audio": audio, "video": video}
        masks = None
        if self.config.feedback:
            first = self.encode(inputs, lengths)
            inputs, masks = self.feedback(inputs, first, lengths)
        second = self.encode(inputs, lengths)
        if self.fuser is not None:
            features = self.fuser(second, lengths)
        else:
            features = torch.cat([second[m] for m in self.config.modalities], dim=-1)
        sentiment, per_step = self.head(features, lengths)
        return ModelOutput(sentiment=sentiment, masks=masks, per_step=per_step)
