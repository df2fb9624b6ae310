"""One per-user cache folder for the whole product (models.cache.cache_dir)."""

from pathlib import Path

import pytest

from models.cache import cache_dir


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
