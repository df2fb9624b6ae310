"""MMMIE: multimodal mutual-information estimation with identity embedding (Zheng et al., 2022).

The paper has no public code; this is our reading of it, term by term.

* Encoders. Each modality m: Linear to ``d_model``, LayerNorm, a BiLSTM (directions summed)
  for local context, giving deterministic features e_m (B, T, d).
* MI minimisation between each input and its features (``use_vib``): a variational
  information bottleneck. A stochastic encoder q(z_m | x_m) = N(mu_m, diag(sigma_m^2)) with
  mu, log sigma^2 linear in e_m; training samples z_m = mu + sigma * eps (reparameterised),
  eval() uses z_m = mu (deterministic). The encoder starts nearly deterministic (log sigma^2
  bias -4, as in Alemi et al.'s VIB, where sigma = softplus(x - 5)); the KL then trades noise
  for compression. The term is KL(q(z_m | x_m) || N(0, I)), an upper bound
  on I(X_m; Z_m), per step, averaged over valid steps, dimensions and modalities, weighted by
  ``beta``. Off: z_m = e_m and no KL.
* MI maximisation between every modality pair (``use_infonce``): InfoNCE between pooled
  modality representations. For each pair (text-audio, text-video, audio-video), the pooled
  z's (mean over valid steps; with ``per_step`` each valid step is its own sample, since there
  every step is one utterance) are L2-normalised, scored by cosine / ``temperature``, and the
  matching row in the batch is the positive (symmetric cross-entropy). log(N) - InfoNCE is a
  lower bound on the pair's MI; the loss is averaged over pairs and weighted by ``nce_weight``.
* Identity Embedding (``use_identity``): a learned modality-identity vector (one per modality)
  and a learned position/context embedding (one per step index, shared across modalities, so
  tokens of the three modalities at the same time share a context code) are added to each
  z_m sequence. The three sequences are concatenated along time (3T tokens) and go through one
  shared Transformer encoder (padding masked). Off: the Transformer sees the bare z's and
  cannot tell modalities or positions apart (the ablation). Step indices past
  ``max_positions - 1`` reuse the last position vector.
* Readout: each modality's Transformer outputs are pooled (or read per step), concatenated
  (3 * d) and fed to an MLP head.

``ModelOutput.aux_loss`` = beta * KL + nce_weight * InfoNCE (the enabled terms);
``ModelOutput.terms`` has the unweighted terms "kl" and "infonce" (also in eval()).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.base import MODALITIES, InputDims, ModelOutput, check_dims
from models.layers import SentimentHead, SequenceLSTM, safe_lengths, step_mask

PAIRS = (("text", "audio"), ("text", "video"), ("audio", "video"))
INIT_LOGVAR = -4.0


@dataclass(frozen=True)
class MMMIEConfig:
    dims: InputDims
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    dropout: float = 0.1
    max_positions: int = 512
    use_vib: bool = True
    beta: float = 0.1
    use_infonce: bool = True
    nce_weight: float = 0.1
    temperature: float = 0.2
    use_identity: bool = True
    head_hidden: int = 64
    per_step: bool = False
    name: str = "mmmie"  # the registry name (models.registry); not saved in config.json
    # execution option, same maths (models.layers.SequenceLSTM); not saved in config.json
    zero_input_shortcut: bool = False

    def __post_init__(self) -> None:
        if self.d_model % self.heads:
            raise ValueError("d_model must be divisible by heads")
        if self.temperature <= 0 or self.beta < 0 or self.nce_weight < 0:
            raise ValueError("temperature must be > 0, beta and nce_weight >= 0")


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE over N paired rows of (N, d); 0 when N < 2."""
    if a.shape[0] < 2:
        return a.new_zeros(())
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


class MMMIE(nn.Module):
    def __init__(self, config: MMMIEConfig):
        super().__init__()
        self.config = config
        c = config
        sizes = dict(zip(MODALITIES, c.dims.as_tuple(), strict=True))
        self.inputs = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(sizes[m], c.d_model), nn.LayerNorm(c.d_model))
             for m in MODALITIES}
        )
        self.rnns = nn.ModuleDict(
            {m: SequenceLSTM(c.d_model, c.d_model, True, c.dropout, c.zero_input_shortcut)
             for m in MODALITIES}
        )
        self.mu = nn.ModuleDict({m: nn.Linear(c.d_model, c.d_model) for m in MODALITIES})
        self.logvar = nn.ModuleDict({m: nn.Linear(c.d_model, c.d_model) for m in MODALITIES})
        for layer in self.logvar.values():
            nn.init.constant_(layer.bias, INIT_LOGVAR)
        self.identity = nn.Parameter(torch.randn(len(MODALITIES), c.d_model) * 0.02)
        self.position = nn.Parameter(torch.randn(c.max_positions, c.d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            c.d_model, c.heads, dim_feedforward=2 * c.d_model, dropout=c.dropout,
            batch_first=True, norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(
            layer, c.layers, enable_nested_tensor=False
        )
        self.norm = nn.LayerNorm(c.d_model)
        self.head = SentimentHead(3 * c.d_model, c.head_hidden, c.dropout, c.per_step)

    def _bottleneck(self, m: str, e: torch.Tensor, valid: torch.Tensor):
        """(z, kl per valid step and dim averaged) for one modality."""
        if not self.config.use_vib:
            return e, None
        mu, logvar = self.mu[m](e), self.logvar[m](e).clamp(-10.0, 10.0)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).mean(-1)
        kl = (kl * valid).sum() / valid.sum().clamp(min=1.0)
        return z * valid[..., None], kl

    def _units(self, z: torch.Tensor, lengths: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The samples InfoNCE contrasts: valid steps (per_step) or pooled sequences."""
        if self.config.per_step:
            return z[valid.bool()]
        return (z * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp(min=1.0)

    def forward(self, text: torch.Tensor, audio: torch.Tensor, video: torch.Tensor,
                lengths: torch.Tensor) -> ModelOutput:
        c = self.config
        check_dims(c.dims, InputDims(text.shape[-1], audio.shape[-1], video.shape[-1]), "MMMIE")
        steps = text.shape[1]
        lengths = safe_lengths(lengths, steps)
        valid = step_mask(lengths, steps).to(text.dtype)
        zs, kls = {}, []
        for m, x in zip(MODALITIES, (text, audio, video), strict=True):
            e = self.rnns[m](self.inputs[m](x), lengths)
            zs[m], kl = self._bottleneck(m, e, valid)
            if kl is not None:
                kls.append(kl)
        tokens = []
        for i, m in enumerate(MODALITIES):
            tok = zs[m]
            if c.use_identity:
                pos = torch.arange(steps, device=text.device).clamp(max=c.max_positions - 1)
                tok = tok + self.identity[i] + self.position[pos][None]
            tokens.append(tok)
        pad = ~valid.bool()
        fused = self.transformer(
            torch.cat(tokens, dim=1), src_key_padding_mask=torch.cat([pad] * 3, dim=1)
        )
        fused = self.norm(fused) * torch.cat([valid] * 3, dim=1)[..., None]
        features = torch.cat(fused.split(steps, dim=1), dim=-1)
        sentiment, per_step = self.head(features, lengths)

        terms: dict[str, torch.Tensor] = {}
        aux = text.new_zeros(())
        if kls:
            terms["kl"] = torch.stack(kls).mean()
            aux = aux + c.beta * terms["kl"]
        if c.use_infonce:
            units = {m: self._units(zs[m], lengths, valid) for m in MODALITIES}
            terms["infonce"] = torch.stack(
                [info_nce(units[a], units[b], c.temperature) for a, b in PAIRS]
            ).mean()
            aux = aux + c.nce_weight * terms["infonce"]
        return ModelOutput(
            sentiment=sentiment, aux_loss=aux if terms else None, terms=terms or None,
            per_step=per_step,
        )
