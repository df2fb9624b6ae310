"""Model behaviour: shapes, eval determinism, MMLatch's masks and feedback, MMMIE's terms,
the registry and checkpoints. Tiny configs throughout."""

import json

import pytest
import torch

import models.mmlatch as mmlatch_module
from models import checkpoint
from models.base import DimensionMismatch, InputDims
from models.registry import NAMES, create

DIMS = InputDims(6, 4, 5)
TINY = {"mmlatch": {"hidden": 8, "head_hidden": 8}, "mmmie": {"d_model": 8, "heads": 2,
        "layers": 1, "head_hidden": 8}, "mult": {"d_model": 8, "heads": 2, "layers": 1,
        "head_hidden": 8}}


def tiny(name, dims=DIMS, **kw):
    family = "mmlatch" if name not in ("mmmie", "mult") else name
    return create(name, dims, **{**TINY[family], **kw})


def inputs(b=3, t=7, dims=DIMS, lengths=(7, 4, 1), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = [torch.randn(b, t, d, generator=g) for d in dims.as_tuple()]
    lengths = torch.tensor(lengths)
    valid = (torch.arange(t)[None] < lengths[:, None])[..., None]
    return [xi * valid for xi in x] + [lengths]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("per_step", [False, True])
def test_shapes_and_range(name, per_step):
    torch.manual_seed(0)
    model = tiny(name, per_step=per_step).eval()
    with torch.no_grad():
        out = model(*inputs())
    assert out.sentiment.shape == (3,)
    assert torch.isfinite(out.sentiment).all()
    assert out.sentiment.abs().max() <= 3.0
    if per_step:
        assert out.per_step.shape == (3, 7)
        assert float(out.per_step[1, 4:].abs().sum()) == 0.0  # padding
        assert float(out.per_step[2, 1:].abs().sum()) == 0.0
        # the sequence value is the mean of the valid steps
        mean = out.per_step[1, :4].mean()
        assert float(out.sentiment[1]) == pytest.approx(float(mean.clamp(-3, 3)), abs=1e-5)
    else:
        assert out.per_step is None
    assert model.config.dims == DIMS


@pytest.mark.parametrize("name", ["mmlatch", "mmlatch_linear", "mmmie", "mult", "late_fusion"])
def test_eval_forward_is_bit_identical(name):
    torch.manual_seed(0)
    model = tiny(name).eval()
    x = inputs()
    a, b = model(*x), model(*x)
    assert torch.equal(a.sentiment, b.sentiment)
    if a.masks is not None:
        for m in a.masks:
            assert torch.equal(a.masks[m], b.masks[m])


def test_mask_dropout_is_random_in_train_only():
    torch.manual_seed(0)
    model = tiny("mmlatch", dropout=0.0)
    x = inputs()
    model.train()
    assert not torch.equal(model(*x).sentiment, model(*x).sentiment)  # mask dropout p=0.2
    model.eval()
    assert torch.equal(model(*x).sentiment, model(*x).sentiment)


@pytest.mark.parametrize("kind", ["lstm", "linear"])
def test_masks_in_unit_range_zero_at_padding_and_applied(kind):
    torch.manual_seed(0)
    model = tiny("mmlatch", feedback_type=kind).eval()
    text, audio, video, lengths = inputs()
    out = model(text, audio, video, lengths)
    assert set(out.masks) == {"text", "audio", "video"}
    for m, x in zip(("text", "audio", "video"), (text, audio, video), strict=True):
        mask = out.masks[m]
        assert mask.shape == x.shape
        assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
        assert float(mask[1, 4:].abs().sum()) == 0.0
        assert float(mask[0].std()) > 0.0  # not a constant
    # the second pass really sees x * mask
    inp = {"text": text, "audio": audio, "video": video}
    first = model.encode(inp, lengths)
    masked, masks = model.feedback(inp, first, lengths)
    for m in inp:
        assert torch.allclose(masked[m], inp[m] * masks[m], atol=1e-6)
    # and the mask changes the prediction: zero the projections, so every mask is exactly 0.5
    with torch.no_grad():
        for p in model.projections.parameters():
            p.zero_()
    flat = model(text, audio, video, lengths)
    assert torch.equal(flat.masks["video"][0], torch.full_like(video[0], 0.5))
    assert not torch.allclose(flat.sentiment, out.sentiment)


def test_gate_mask_kernel_is_called(monkeypatch):
    calls = []
    real = mmlatch_module.gate_mask

    def spy(*args, **kwargs):
        calls.append(kwargs.get("training"))
        return real(*args, **kwargs)

    monkeypatch.setattr(mmlatch_module, "gate_mask", spy)
    model = tiny("mmlatch").eval()
    model(*inputs())
    assert calls == [False, False, False]
    model.train()
    model(*inputs())
    assert calls[3:] == [True, True, True]


def test_gradients_reach_feedback_layers():
    torch.manual_seed(0)
    model = tiny("mmlatch").train()
    model(*inputs()).sentiment.sum().backward()
    for name, proj in model.projections.items():
        grads = [p.grad for p in proj.parameters()]
        assert all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name


def test_no_feedback_ablation_has_no_masks_or_projections():
    model = tiny("mmlatch_nofb").eval()
    out = model(*inputs())
    assert out.masks is None and len(model.projections) == 0


def test_text_only_ignores_audio_and_video():
    torch.manual_seed(0)
    model = tiny("text_only").eval()
    text, audio, video, lengths = inputs()
    a = model(text, audio, video, lengths).sentiment
    b = model(text, audio * 5 + 1, video - 3, lengths).sentiment
    assert torch.equal(a, b)


def test_mmmie_terms_and_switches():
    torch.manual_seed(0)
    out = tiny("mmmie").train()(*inputs())
    assert set(out.terms) == {"kl", "infonce"}
    assert all(torch.isfinite(v) for v in out.terms.values())
    assert float(out.aux_loss.detach()) > 0
    off = tiny("mmmie", use_vib=False, use_infonce=False).train()(*inputs())
    assert off.terms is None and off.aux_loss is None
    only_nce = tiny("mmmie", use_vib=False)(*inputs())
    assert set(only_nce.terms) == {"infonce"}
    no_id = tiny("mmmie", use_identity=False).eval()
    assert torch.isfinite(no_id(*inputs()).sentiment).all()


def test_identity_embedding_tells_modalities_apart():
    """Without identity/position embeddings, swapping time steps of all modalities together
    only permutes the transformer's tokens; with them the output changes."""
    torch.manual_seed(0)
    text, audio, video, _ = inputs(lengths=(7, 7, 7))
    lengths = torch.tensor([7, 7, 7])
    perm = torch.tensor([6, 5, 4, 3, 2, 1, 0])
    for use_identity, changes in ((True, True), (False, False)):
        model = tiny("mmmie", use_identity=use_identity, use_vib=False).eval()
        # reversing time changes BiLSTM outputs only by direction order: compare pooled heads
        model.rnns = torch.nn.ModuleDict({m: _Identity() for m in model.rnns})
        a = model(text, audio, video, lengths).sentiment
        b = model(text[:, perm], audio[:, perm], video[:, perm], lengths).sentiment
        assert (not torch.allclose(a, b, atol=1e-5)) == changes


class _Identity(torch.nn.Module):
    def forward(self, x, lengths):
        return x


def test_dims_are_checked():
    model = tiny("mmlatch").eval()
    text, audio, video, lengths = inputs()
    with pytest.raises(DimensionMismatch, match="audio=4"):
        model(text, audio[..., :3], video, lengths)


def test_registry_errors():
    with pytest.raises(KeyError, match="unknown model"):
        create("nope", DIMS)
    with pytest.raises(TypeError, match="unknown config fields"):
        create("mmlatch", DIMS, hiden=3)
    with pytest.raises(ValueError, match="need all three modalities"):
        create("mmlatch", DIMS, modalities=("text",))


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = tiny(name, per_step=True)
    checkpoint.save(model, tmp_path, meta={"data": "synthetic"})
    loaded = checkpoint.load(tmp_path)
    assert not loaded.training and loaded.config.name == name
    assert loaded.config == model.config
    assert checkpoint.read_meta(tmp_path) == {"data": "synthetic"}
    model.eval()
    x = inputs()
    a, b = model(*x), loaded(*x)
    assert torch.equal(a.sentiment, b.sentiment) and torch.equal(a.per_step, b.per_step)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="config.json not found"):
        checkpoint.load(tmp_path)
    checkpoint.save(tiny("late_fusion"), tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
        checkpoint.load(tmp_path)
    checkpoint.save(tiny("late_fusion"), tmp_path)
    doc = json.loads((tmp_path / "config.json").read_text())
    doc["config"]["hidden"] = 9
    (tmp_path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(checkpoint.CheckpointError, match="does not match"):
        checkpoint.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(checkpoint.CheckpointError, match="not a valid checkpoint"):
        checkpoint.load(tmp_path)
