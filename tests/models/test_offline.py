"""models.offline: one set of variables keeps every entry point and subprocess offline."""

from __future__ import annotations

import os

import pytest

from models.offline import OFFLINE_ENV, apply_offline_env


def test_apply_forces_every_variable_and_leaves_the_rest():
    env = {"HF_HUB_OFFLINE": "0", "GRADIO_ANALYTICS_ENABLED": "True", "PATH": "/bin"}
    apply_offline_env(env)
    assert env == {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                   "GRADIO_ANALYTICS_ENABLED": "False", "PATH": "/bin"}
    with pytest.raises(TypeError):
        OFFLINE_ENV["HF_HUB_OFFLINE"] = "0"  # type: ignore[index]


def test_apply_defaults_to_this_process(monkeypatch):
    for key in OFFLINE_ENV:
        monkeypatch.setenv(key, "online")
    apply_offline_env()
    assert {k: os.environ[k] for k in OFFLINE_ENV} == dict(OFFLINE_ENV)
