"""The bundled demo recording, the test-media generators in tests/helpers/media.py, and wer()."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import REPO, media

POSITIVE_WORDS = {"love", "wonderful", "beautiful", "brilliant", "fantastic", "happy", "great",
                  "enjoyed"}
NEGATIVE_WORDS = {"terrible", "awful", "hated", "boring", "painful", "worst", "waste"}


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0


# ---------------------------------------------------------------------------------------------
# The demo recording


def test_demo_recording_format():
    assert media.DEMO_MP4.is_file(), "run scripts/make_demo_recording.py"
    assert media.DEMO_MP4.stat().st_size <= 3.5e6
    assert 20.0 <= media.duration_s(media.DEMO_MP4) <= 40.0
    assert sorted(t for t, _ in media.streams(media.DEMO_MP4)) == ["audio", "video"]
    video = media.stream_info(media.DEMO_MP4, "video")
    assert (video["codec_name"], video["pix_fmt"]) == ("h264", "yuv420p")
    assert (video["width"], video["height"]) == media.SIZE
    assert 15 <= int(video["nb_frames"]) / media.duration_s(media.DEMO_MP4) <= 25
    audio = media.stream_info(media.DEMO_MP4, "audio")
    assert audio["codec_name"] == "aac" and audio["channels"] == 1
    assert int(audio["sample_rate"]) >= 16000
    head = media.DEMO_MP4.read_bytes()
    assert head.index(b"moov") < head.index(b"mdat"), "not written with -movflags +faststart"


def test_demo_script_alternates_clear_positive_and_negative_sentences():
    lines = media.demo_script()
    assert len(lines) >= 6
    assert [ln.polarity for ln in lines] == [(+1, -1)[i % 2] for i in range(len(lines))]
    for line in lines:
        words = set(media.normalize_words(line.text))
        own, other = (POSITIVE_WORDS, NEGATIVE_WORDS)[::line.polarity]
        assert words & own and not words & other, line
    assert media.demo_text().startswith(lines[0].text)


def test_demo_script_times_match_the_audio():
    lines = media.demo_script()
    duration_s = media.duration_s(media.DEMO_MP4)
    starts = [ln.start_s for ln in lines]
    assert starts == sorted(starts) and 0.0 < starts[0] and lines[-1].end_s < duration_s
    rate = 16000
    audio = media.decode_audio(media.DEMO_MP4, rate)
    assert len(audio) / rate == pytest.approx(duration_s, abs=0.1)

    def part(t0_s: float, t1_s: float) -> np.ndarray:
        return audio[int(t0_s * rate) : int(t1_s * rate)]

    for line in lines:
        assert 1.0 < line.end_s - line.start_s < 6.0, line
        assert rms(part(line.start_s, line.end_s)) > 0.02, line  # speech
    for before, after in zip(lines, lines[1:], strict=False):
        gap = part(before.end_s + 0.1, after.start_s - 0.1)
        assert after.start_s - before.end_s >= 0.4 and rms(gap) < 0.005, (before, after)


def test_demo_recording_shows_a_detectable_face():
    frames = media.sampled_frames(media.DEMO_MP4, 6)
    assert len(frames) == 6
    assert media.count_faces(frames) == (6, 6)
    assert not all(np.array_equal(frames[0], f) for f in frames[1:])  # the picture moves


def test_face_check_can_fail_without_a_face():
    assert media.count_faces([media.no_face_frame()]) == (0, 1)


@pytest.mark.slow
def test_demo_generator_reproduces_the_committed_script(tmp_path):
    script = REPO / "scripts" / "make_demo_recording.py"
    done = subprocess.run([sys.executable, str(script), "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "demo.mp4" in done.stdout and " MB, " in done.stdout
    assert (tmp_path / "demo_script.txt").read_text() == media.DEMO_SCRIPT.read_text()
    new, old = tmp_path / "demo.mp4", media.DEMO_MP4
    assert media.duration_s(new) == pytest.approx(media.duration_s(old), abs=0.05)
    assert media.streams(new) == media.streams(old)
    assert abs(new.stat().st_size - old.stat().st_size) < 0.1 * old.stat().st_size


# ---------------------------------------------------------------------------------------------
# Generators


def wav_format(path: Path) -> tuple[int, int, float]:
    with wave.open(str(path), "rb") as wf:
        return wf.getframerate(), wf.getnchannels(), wf.getnframes() / wf.getframerate()


def test_speech_wav_and_samples(tmp_path):
    wav = media.speech_wav(tmp_path, "hello there, how are you", rate_hz=16000)
    rate, channels, seconds = wav_format(wav)
    assert (rate, channels) == (16000, 1) and 0.8 < seconds < 4.0
    samples = media.speech_samples("hello there, how are you", rate_hz=16000)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) == round(seconds * 16000)
    assert 0.02 < rms(samples) and np.abs(samples).max() <= 1
    again = media.speech_wav(tmp_path / "again", "hello there, how are you")
    assert again.read_bytes() == wav.read_bytes() and again != wav
    assert wav_format(media.speech_wav(tmp_path, "hello", rate_hz=8000))[0] == 8000


def test_stereo_and_silence(tmp_path):
    rate, channels, seconds = wav_format(media.stereo_44k_wav(tmp_path))
    assert (rate, channels) == (44100, 2) and seconds > 1.0
    silence = media.silence_wav(tmp_path, 1.5, rate_hz=16000)
    assert wav_format(silence) == (16000, 1, 1.5)
    assert not media.read_wav(silence)[0].any()


@pytest.mark.parametrize("ext,codec", [("wav", "pcm_s16le"), ("m4a", "aac"), ("mp3", "mp3")])
def test_audio_only(tmp_path, ext, codec):
    path = media.audio_only(tmp_path, ext)
    assert path.suffix == f".{ext}" and media.streams(path) == [("audio", codec)]
    assert rms(media.decode_audio(path)) > 0.02


@pytest.mark.parametrize("ext,codec", [("mp4", "h264"), ("mkv", "h264"), ("webm", "vp8")])
def test_video_only(tmp_path, ext, codec):
    path = media.video_only(tmp_path, ext, seconds=1.0, fps=10)
    assert path.suffix == f".{ext}" and media.streams(path) == [("video", codec)]
    assert media.duration_s(path) == pytest.approx(1.0, abs=0.1)


def test_face_video_with_speech(tmp_path):
    path = media.face_video(tmp_path, seconds=3.0, fps=15, with_audio_text="I love this",
                            size=(320, 240))
    assert media.streams(path) == [("video", "h264"), ("audio", "aac")]
    assert media.duration_s(path) == pytest.approx(3.0, abs=0.1)
    video = media.stream_info(path, "video")
    assert (video["width"], video["height"], int(video["nb_frames"])) == (320, 240, 45)
    audio = media.decode_audio(path)
    assert rms(audio[:3000]) < 0.005 < 0.02 < rms(audio[5000:15000])  # starts at 0.3 s
    with pytest.raises(ValueError, match="needs"):
        media.face_video(tmp_path, seconds=0.5, with_audio_text=media.POSITIVE_TEXT)


def test_no_face_video(tmp_path):
    path = media.no_face_video(tmp_path, seconds=1.0, fps=5)
    assert media.streams(path) == [("video", "h264")]
    assert media.count_faces(media.sampled_frames(path, 2)) == (0, 2)


def test_face_frames_move_deterministically():
    a, b = media.face_frame(1.0), media.face_frame(1.5)
    assert a.shape == (480, 640, 3) and a.dtype == np.uint8
    assert np.array_equal(a, media.face_frame(1.0))
    assert 2.0 < np.abs(a.astype(int) - b).mean() < 60.0  # moves, gently


def test_face_y4m(tmp_path):
    path = media.face_y4m(tmp_path, seconds=1.0, fps=10, size=(320, 240))
    data = path.read_bytes()
    header = b"YUV4MPEG2 W320 H240 F10:1 Ip A1:1 C420jpeg\n"
    assert data.startswith(header)
    assert len(data) == len(header) + 10 * (len(b"FRAME\n") + 320 * 240 * 3 // 2)
    assert media.streams(path) == [("video", "rawvideo")]
    with pytest.raises(ValueError, match="even"):
        media.face_y4m(tmp_path, size=(321, 240))


def test_bad_inputs(tmp_path):
    empty = media.empty_file(tmp_path, ".wav")
    assert empty.suffix == ".wav" and empty.stat().st_size == 0
    for path in (empty, media.corrupt_file(tmp_path, ".mp4", "random"),
                 media.corrupt_file(tmp_path / "t", ".mp4", "truncated")):
        with pytest.raises(RuntimeError, match="ffprobe failed"):
            media.probe(path)
    cut = media.corrupt_file(tmp_path, ".wav", "truncated")
    whole = media.audio_only(tmp_path, "wav")
    assert 0 < cut.stat().st_size < whole.stat().st_size
    with pytest.raises(ValueError, match="kind"):
        media.corrupt_file(tmp_path, ".mp4", "scrambled")
    with pytest.raises(ValueError, match="ext"):
        media.audio_only(tmp_path, "ogg")


# ---------------------------------------------------------------------------------------------
# Word error rate


@pytest.mark.parametrize(
    "reference,hypothesis,expected",
    [
        ("the cat sat", "the cat sat", 0.0),
        ("The cat, sat!", "the CAT sat", 0.0),  # case and punctuation ignored
        ("don't stop", "dont stop", 0.0),
        ("the cat sat", "the big cat sat", 1 / 3),  # insertion
        ("the cat sat", "the sat", 1 / 3),  # deletion
        ("the cat sat", "the dog sat", 1 / 3),  # substitution
        ("the cat sat", "", 1.0),
        ("a b c d", "x a b c", 0.5),  # one insertion + one deletion, not four substitutions
        ("", "", 0.0),
        ("", "hello there", 2.0),
    ],
)
def test_wer(reference, hypothesis, expected):
    assert media.wer(reference, hypothesis) == pytest.approx(expected)
