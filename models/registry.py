"""Model names -> (config dataclass, model class, preset overrides).

One class per architecture; the baselines and ablations are presets of those classes:

| name          | class  | preset                                               |
| ------------- | ------ | ---------------------------------------------------- |
| mmlatch       | MMLatch| feedback (LSTM projections), the authors' attention fuser |
| mmlatch_linear| MMLatch| feedback with Linear projections                     |
| mmlatch_late  | MMLatch| feedback, late-fusion head                           |
| mmlatch_nofb  | MMLatch| no feedback (the ablation), attention fuser          |
| late_fusion   | MMLatch| no feedback, late-fusion head                        |
| text_only     | MMLatch| no feedback, late-fusion head, text only             |
| mmmie         | MMMIE  | all three terms on                                   |
| mult          | MulT   |                                                      |
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

from models.base import InputDims
from models.baselines import MulT, MulTConfig
from models.mmlatch import MMLatch, MMLatchConfig
from models.mmmie import MMMIE, MMMIEConfig


@dataclass(frozen=True)
class Spec:
    config_cls: type
    model_cls: type
    preset: tuple[tuple[str, Any], ...] = ()


REGISTRY: dict[str, Spec] = {
    "mmlatch": Spec(MMLatchConfig, MMLatch),
    "mmlatch_linear": Spec(MMLatchConfig, MMLatch, (("feedback_type", "linear"),)),
    "mmlatch_late": Spec(MMLatchConfig, MMLatch, (("fusion", "late"),)),
    "mmlatch_nofb": Spec(MMLatchConfig, MMLatch, (("feedback", False),)),
    "late_fusion": Spec(MMLatchConfig, MMLatch, (("feedback", False), ("fusion", "late"))),
    "text_only": Spec(
        MMLatchConfig, MMLatch,
        (("feedback", False), ("fusion", "late"), ("modalities", ("text",))),
    ),
    "mmmie": Spec(MMMIEConfig, MMMIE),
    "mult": Spec(MulTConfig, MulT),
}
NAMES: tuple[str, ...] = tuple(REGISTRY)


class UnknownModel(KeyError):
    def __str__(self) -> str:
        return f"unknown model {self.args[0]!r}; known: {', '.join(NAMES)}"


def spec(name: str) -> Spec:
    if name not in REGISTRY:
        raise UnknownModel(name)
    return REGISTRY[name]


def make_config(name: str, dims: InputDims, **overrides: Any):
    s = spec(name)
    fields = {f.name for f in dataclasses.fields(s.config_cls)}
    bad = set(overrides) - fields
    if bad:
        raise TypeError(f"{name}: unknown config fields {sorted(bad)}; known: {sorted(fields)}")
    return s.config_cls(dims=dims, **{**dict(s.preset), **overrides, "name": name})


def build(name: str, config) -> nn.Module:
    """The model for an existing config (whose ``name`` becomes ``name``): the registry
    name is read back as ``model.config.name``."""
    s = spec(name)
    if not isinstance(config, s.config_cls):
        raise TypeError(f"{name} needs a {s.config_cls.__name__}, got {type(config).__name__}")
    return s.model_cls(dataclasses.replace(config, name=name))


def create(name: str, dims: InputDims, **overrides: Any) -> nn.Module:
    return build(name, make_config(name, dims, **overrides))


# Config fields that are not saved in config.json: ``name`` (the checkpoint stores it beside
# the config, as "model") and ``zero_input_shortcut`` (an execution option with the same
# maths, so a loaded model always starts without it).
NOT_SAVED: tuple[str, ...] = ("name", "zero_input_shortcut")


def config_to_dict(config) -> dict[str, Any]:
    """The config as saved in a checkpoint's config.json: every field but `NOT_SAVED`."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in NOT_SAVED}


def config_from_dict(name: str, data: dict[str, Any]):
    """Inverse of `config_to_dict` (JSON lists become tuples, dims an InputDims)."""
    s = spec(name)
    fields = {f.name for f in dataclasses.fields(s.config_cls)}
    values = {}
    for key, value in data.items():
        if key not in fields or key in NOT_SAVED:
            raise ValueError(f"{name} config has no field {key!r}")
        if key == "dims":
            value = InputDims(**value)
        elif isinstance(value, list):
            value = tuple(value)
        values[key] = value
    return s.config_cls(**values, name=name)
