"""Media files broken in every way we could make them (generated here: random bytes under
media names, valid files cut at several points, headers that lie, NaN and Inf samples, text
under a media name). `python -m realtime --source F --fast` on each either exits 2 with one
line, or processes it: valid JSON lines without NaN, and any loss said in a warning. None
hangs or prints a traceback. The model is a stand-in (the subject is the input path)."""

from __future__ import annotations

import json
import math
import struct
import threading

import numpy as np
import pytest

from tests.helpers import media
from tests.realtime.test_cli import run_main
from tests.realtime.test_pipeline import fake_engine

HANG_S = 60.0


@pytest.fixture(autouse=True)
def fake_model(monkeypatch):
    import realtime.engine

    monkeypatch.setattr(realtime.engine.Engine, "load",
                        classmethod(lambda cls, *a, **k: fake_engine()))


def _run(path, tmp_path) -> tuple[int, str, list[dict]]:
    out = tmp_path / "out.jsonl"
    result: dict = {}

    def go() -> None:
        result["r"] = run_main("--source", str(path), "--fast", "--quiet", "--jsonl", str(out))

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(HANG_S)
    assert not thread.is_alive(), f"{path.name}: still running after {HANG_S} s"
    code, _, stderr = result["r"]
    assert "Traceback" not in stderr, stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return code, stderr, rows


def _check(path, tmp_path) -> tuple[int, str, list[dict]]:
    code, stderr, rows = _run(path, tmp_path)
    if code == 2:
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr
        assert not rows
    else:
        assert code == 0, stderr
        for row in rows:
            assert -3 <= row["sentiment"] <= 3 and math.isfinite(row["sentiment"])
            assert all(v is None or math.isfinite(v) for v in row["signals"].values())
            assert all(isinstance(n, int) for n in row["drops"].values())
    return code, stderr, rows


@pytest.mark.parametrize("ext", ["mp4", "webm", "mkv", "wav", "mp3", "m4a", "avi", "txt"])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_bytes_under_a_media_name(tmp_path, ext, seed):
    path = tmp_path / f"junk.{ext}"
    size = int(np.random.default_rng(seed).integers(10, 200_000))
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    _check(path, tmp_path)  # mp3 decoders find frames in noise: processed or refused


@pytest.fixture(scope="module")
def whole_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whole")
    return {
        "mp4": media.face_video(tmp / "a", seconds=3.0, fps=15, with_audio_text="hello there"),
        "webm": media.video_only(tmp / "b", "webm", seconds=3.0),
        "wav": media.audio_only(tmp / "c", "wav"),
        "mp3": media.audio_only(tmp / "d", "mp3"),
    }


@pytest.mark.parametrize("kind", ["mp4", "webm", "wav", "mp3"])
@pytest.mark.parametrize("fraction", [0.02, 0.25, 0.5, 0.75, 0.97])
def test_a_file_cut_at_several_points(tmp_path, whole_files, kind, fraction):
    data = whole_files[kind].read_bytes()
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(data[: max(1, int(len(data) * fraction))])
    code, stderr, rows = _check(cut, tmp_path)
    if code == 0 and kind in ("wav", "mp4"):  # these declare their length: loss is said
        assert "truncated" in stderr or "decoding stopped" in stderr, stderr


def _float_wav(path, samples: np.ndarray, rate_hz: int = 16000, declared_n: int | None = None):
    data = samples.astype("<f4").tobytes()
    n = len(data) if declared_n is None else declared_n * 4
    header = (b"RIFF" + struct.pack("<I", 36 + n) + b"WAVE" + b"fmt "
              + struct.pack("<IHHIIHH", 16, 3, 1, rate_hz, rate_hz * 4, 4, 32)
              + b"data" + struct.pack("<I", n))
    path.write_bytes(header + data)
    return path


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e30])
def test_non_finite_and_huge_samples_are_processed(tmp_path, value):
    x = media.speech_samples("hello there").astype(np.float32)
    x[::7] = value
    code, _, rows = _check(_float_wav(tmp_path / "odd.wav", x), tmp_path)
    assert code == 0 and rows


def test_a_header_that_claims_more_than_the_file_holds(tmp_path):
    x = media.speech_samples("hello there").astype(np.float32)
    path = _float_wav(tmp_path / "lies.wav", x, declared_n=len(x) * 10)
    code, stderr, rows = _check(path, tmp_path)
    assert code == 2 or "truncated" in stderr, stderr


@pytest.mark.parametrize("rate_hz", [1, 8, 1_000_000])
def test_absurd_sample_rates(tmp_path, rate_hz):
    # 4000 samples at 1 Hz "last" 67 minutes: refused, not replayed for an hour
    x = np.zeros(4000, np.float32)
    code, stderr, _ = _check(_float_wav(tmp_path / "rate.wav", x, rate_hz=rate_hz), tmp_path)
    if rate_hz < 4000:
        assert code == 2 and "at least 4000 Hz" in stderr


@pytest.mark.parametrize("name", ["notes.txt", "notes.srt", "notes.mp4", "notes.wav"])
def test_text_under_any_name_is_refused(tmp_path, name):
    path = tmp_path / name
    path.write_text("1\n00:00:01,000 --> 00:00:02,000\nhello there\n" * 40)
    code, _, _ = _check(path, tmp_path)
    assert code == 2
