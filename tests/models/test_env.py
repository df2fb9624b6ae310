"""models.env: one user cache folder, and one set of variables that keeps every entry point
and subprocess offline (--log-level is tested through the command lines that take it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from models.env import OFFLINE_ENV, apply_offline_env, cache_dir


@pytest.fixture
def no_cache_env(monkeypatch):
    monkeypatch.delenv("SENTIMENT_MONITOR_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)


def test_cache_dir_follows_xdg(no_cache_env, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "live-sentiment-monitor"


def test_cache_dir_defaults_to_home(no_cache_env, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "live-sentiment-monitor"


def test_sentiment_monitor_cache_wins_and_every_user_follows_it(no_cache_env, monkeypatch,
                                                                tmp_path):
    from models.data.spoken import spoken_dir
    from models.training.calibrate import personal_model_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("SENTIMENT_MONITOR_CACHE", "~/somewhere")
    assert cache_dir() == Path.home() / "somewhere"
    monkeypatch.setenv("SENTIMENT_MONITOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SPOKEN_MOSI_DIR", raising=False)
    assert spoken_dir() == tmp_path / "cache" / "spoken_mosi"
    assert personal_model_dir() == tmp_path / "cache" / "personal_model"


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
