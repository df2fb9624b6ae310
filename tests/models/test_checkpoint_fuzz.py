"""Checkpoints that are broken in every way we could make them (generated here): each load
raises `CheckpointError` with one line naming the problem; none loads, hangs or raises
anything else. And a model with a non-finite tensor is never saved."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from models import checkpoint
from models.base import InputDims
from models.registry import create

DIMS = InputDims(5, 4, 3)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    torch.manual_seed(0)
    return checkpoint.save(create("mmlatch", DIMS, hidden=8, head_hidden=6),
                           tmp_path_factory.mktemp("good"))


def _copy(good, tmp_path):
    out = tmp_path / "ckpt"
    shutil.copytree(good, out)
    return out


def _edit_weights(folder, edit):
    state = load_file(str(folder / checkpoint.WEIGHTS))
    edit(state)
    save_file(state, str(folder / checkpoint.WEIGHTS))


def _edit_config(folder, edit):
    doc = json.loads((folder / checkpoint.CONFIG).read_text())
    edit(doc)
    (folder / checkpoint.CONFIG).write_text(json.dumps(doc))


def _load_error(folder) -> str:
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.load(folder)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def _first_float(state):
    return next(k for k, v in state.items() if v.is_floating_point())


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_weight_is_refused_at_load_naming_the_tensor(good, tmp_path, value):
    folder = _copy(good, tmp_path)
    name = {}

    def poison(state):
        name["k"] = _first_float(state)
        state[name["k"]].view(-1)[0] = value

    _edit_weights(folder, poison)
    message = _load_error(folder)
    assert f"tensor {name['k']!r} has 1 non-finite values" in message


@pytest.mark.parametrize("field, value", [("hidden", 32), ("hidden", 4)])
def test_a_config_that_does_not_match_the_weights_is_one_line(good, tmp_path, field, value):
    folder = _copy(good, tmp_path)
    _edit_config(folder, lambda doc: doc["config"].__setitem__(field, value))
    message = _load_error(folder)
    assert "does not match" in message and "in the weights but" in message


def test_dims_that_do_not_match_the_weights_are_one_line(good, tmp_path):
    folder = _copy(good, tmp_path)
    _edit_config(folder, lambda doc: doc["config"]["dims"].__setitem__("audio", 9))
    assert "for the config" in _load_error(folder)


def test_missing_and_extra_tensors_are_named(good, tmp_path):
    folder = _copy(good, tmp_path)
    _edit_weights(folder, lambda state: state.pop(sorted(state)[0]))
    assert "is missing" in _load_error(folder)
    folder = _copy(good, tmp_path / "b")
    _edit_weights(folder, lambda state: state.__setitem__("extra.weight", torch.zeros(2)))
    assert "'extra.weight' is not in the model" in _load_error(folder)


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_as_weights_or_config(good, tmp_path, seed):
    rng = np.random.default_rng(seed)
    folder = _copy(good, tmp_path)
    target = checkpoint.WEIGHTS if seed % 2 == 0 else checkpoint.CONFIG
    (folder / target).write_bytes(rng.bytes(int(rng.integers(1, 4096))))
    _load_error(folder)


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.3, 0.5, 0.9, 0.999])
def test_truncated_weights(good, tmp_path, fraction):
    folder = _copy(good, tmp_path)
    data = (folder / checkpoint.WEIGHTS).read_bytes()
    (folder / checkpoint.WEIGHTS).write_bytes(data[: int(len(data) * fraction)])
    _load_error(folder)


@pytest.mark.parametrize("edit", [
    lambda doc: doc.__setitem__("model", "nope"),
    lambda doc: doc.__setitem__("config", []),
    lambda doc: doc["config"].__setitem__("hidden", -3),
    lambda doc: doc["config"].__setitem__("hidden", "wide"),
    lambda doc: doc["config"].__setitem__("dims", {"text": 5}),
    lambda doc: doc["config"].__setitem__("fusion", "telepathy"),
    lambda doc: doc.pop("config"),
    lambda doc: doc.__setitem__("format", 99),
], ids=["unknown-model", "config-list", "hidden-negative", "hidden-text", "dims-partial",
        "fusion-unknown", "no-config", "format-99"])
def test_bad_configs(good, tmp_path, edit):
    folder = _copy(good, tmp_path)
    _edit_config(folder, edit)
    _load_error(folder)


def test_a_model_with_non_finite_weights_is_never_saved(tmp_path):
    model = create("mmlatch", DIMS, hidden=8, head_hidden=6)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = math.nan
    with pytest.raises(checkpoint.CheckpointError, match="refusing to save"):
        checkpoint.save(model, tmp_path / "out")
    assert not (tmp_path / "out" / checkpoint.WEIGHTS).exists()
