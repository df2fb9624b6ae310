"""Shared test set-up: offline environment, the MOSI data path, and artifact folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from models.env import apply_offline_env

apply_offline_env()  # before any test module imports gradio or transformers

from tests.helpers import REPO  # noqa: E402
from tests.helpers.required import missing  # noqa: E402

ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def mosi_dir() -> Path:
    """The CMU-MOSI folder ($MOSI_DIR, default ../shared/data/mosi); when absent, skips
    here and fails under CI (tests.helpers.required)."""
    path = Path(os.environ.get("MOSI_DIR", REPO.parent / "shared" / "data" / "mosi"))
    if not (path / "standard_folds.json").exists():
        missing(f"CMU-MOSI data not found at {path} (set MOSI_DIR)")
    return path


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(autouse=True)
def private_data_dir(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own user data folder ($SENTIMENT_DATA_DIR): nothing a test does
    (calibration sessions, consented session logs, retention) touches the real one."""
    path = tmp_path_factory.mktemp("user-data")
    monkeypatch.setenv("SENTIMENT_DATA_DIR", str(path))
    return path
