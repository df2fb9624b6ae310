"""Sources: file decoding and pacing, bounded queues, stop paths, bad input (no hardware)."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from realtime.clock import ReplayClock, SessionClock
from realtime.sources import BrowserSource, DropQueue, FileSource, SourceError, WebcamSource
from realtime.types import AudioChunk, VideoFrame
from tests.helpers.fakes import flaky_capture


def ffmpeg(out: Path, *args: str) -> Path:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args, str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    pattern = ["-f", "lavfi", "-i", "testsrc=size=1280x720:rate=30"]
    return {
        "av": ffmpeg(d / "av.mp4", *pattern, *tone, "-ac", "2", "-t", "2", "-pix_fmt", "yuv420p"),
        "wav": ffmpeg(d / "a.wav", *tone, "-ac", "2", "-t", "1.5"),
        "mp3": ffmpeg(d / "a.mp3", *tone, "-t", "1"),
        "video": ffmpeg(d / "v.webm", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                        "-t", "1"),
        "ts": ffmpeg(d / "av.ts", *pattern, *tone, "-t", "2"),
    }


def split(items):
    items = list(items)
    audio = [i for i in items if isinstance(i, AudioChunk)]
    video = [i for i in items if isinstance(i, VideoFrame)]
    return audio, video


def test_file_audio_is_16k_mono_contiguous_and_frames_are_downscaled_and_decimated(media):
    src = FileSource(media["av"], realtime=False, clock=ReplayClock())
    assert src.has_audio and src.has_video
    items = list(src.items())
    audio, video = split(items)
    samples = np.concatenate([c.samples for c in audio])
    assert all(c.rate_hz == 16000 and c.samples.dtype == np.float32 for c in audio)
    assert 1.95 < len(samples) / 16000 < 2.1
    for a, b in zip(audio, audio[1:], strict=False):
        assert b.t0_s == pytest.approx(a.t1_s, abs=1e-9)
    spectrum = np.abs(np.fft.rfft(samples[:16000]))
    assert abs(np.argmax(spectrum) - 440) <= 2  # 1 s -> 1 Hz bins: the tone survived
    assert video[0].image.shape == (360, 640, 3) and video[0].image.dtype == np.uint8
    assert 19 <= len(video) <= 21  # 30 fps decimated to 10 fps over 2 s
    # time order by availability (chunk end, frame time); replay stamps at that time
    avail = [i.t1_s if isinstance(i, AudioChunk) else i.t_s for i in items]
    assert avail == sorted(avail)
    assert all(c.captured_at_s == pytest.approx(c.t1_s) for c in audio)
    assert all(f.captured_at_s == pytest.approx(f.t_s) for f in video)


@pytest.mark.parametrize("kind", ["wav", "mp3"])
def test_audio_only_files(media, kind):
    src = FileSource(media[kind], realtime=False, clock=ReplayClock())
    assert src.has_audio and not src.has_video
    audio, video = split(src.items())
    assert video == [] and sum(len(c.samples) for c in audio) / 16000 > 0.9


def test_video_only_file(media):
    src = FileSource(media["video"], realtime=False, clock=ReplayClock())
    assert src.has_video and not src.has_audio
    audio, video = split(src.items())
    assert audio == [] and 8 <= len(video) <= 10  # 25 fps -> every third frame (10 fps)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        FileSource(tmp_path / "missing.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="empty"):
        FileSource(empty)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(20000))
    with pytest.raises(SourceError, match="corrupt.mp4"):
        FileSource(corrupt)
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n" * 100)
    with pytest.raises(SourceError, match="notes.wav"):
        FileSource(text)


def test_a_file_that_ends_mid_stream_keeps_what_was_decoded(media, tmp_path):
    data = media["ts"].read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) // 2])
    src = FileSource(cut, realtime=False, clock=ReplayClock())
    audio, video = split(src.items())
    assert 0.3 < sum(len(c.samples) for c in audio) / 16000 < 1.9
    assert 0 < len(video) < 30


def test_realtime_pacing_follows_the_clock(media):
    src = FileSource(media["wav"], realtime=True, clock=SessionClock())
    chunks = []
    for item in src.items():
        chunks.append((item, src.clock.now_s()))
        if item.t1_s > 0.5:
            break
    for chunk, now_s in chunks:
        assert now_s >= chunk.t1_s - 1e-3  # never handed over before its end
        assert chunk.captured_at_s <= now_s
    assert chunks[-1][1] < 1.5  # and not absurdly late


def test_repeat_until_replays_with_continuing_timestamps(media):
    src = FileSource(media["wav"], realtime=False, clock=ReplayClock(), repeat_until_s=4.0)
    audio, _ = split(src.items())
    total_s = sum(len(c.samples) for c in audio) / 16000
    assert 3.9 < total_s < 4.6
    for a, b in zip(audio, audio[1:], strict=False):
        assert b.t0_s == pytest.approx(a.t1_s, abs=1e-6)


def test_threaded_fast_file_loses_nothing_with_a_slow_reader(media):
    src = FileSource(media["wav"], realtime=False, clock=ReplayClock(), audio_queue_len=3)
    src.start()
    got = []
    while not src.finished:
        got += src.read_audio(timeout_s=0.05)
        threading.Event().wait(0.002)
    got += src.read_audio()
    assert src.drops["audio_queue"] == 0
    assert sum(len(c.samples) for c in got) == pytest.approx(1.5 * 16000, abs=400)
    assert src.stop(2.0) and not any(t.is_alive() for t in src.threads)


def test_stop_joins_the_reader_of_a_realtime_file_within_2s(media):
    src = FileSource(media["av"], realtime=True, clock=SessionClock())
    src.start()
    assert src.read_frames(timeout_s=1.0) or src.read_audio(timeout_s=1.0)
    assert src.stop(2.0)
    assert not any(t.is_alive() for t in src.threads) and src.ended


def test_drop_queue_drops_oldest_and_counts():
    q: DropQueue[int] = DropQueue(3)
    for i in range(10):
        q.put(i)
    assert q.get_all() == [7, 8, 9] and q.dropped == 7
    stop = threading.Event()
    for i in range(3):
        q.put(i, block=True)
    stop.set()
    assert q.put(99, block=True, stop=stop) is False and q.dropped == 7


def test_webcam_floods_a_bounded_queue_then_reports_the_lost_camera(media):
    # cv2.VideoCapture on a file delivers frames as fast as it can decode: a flood.
    cam = WebcamSource(str(media["av"]), max_fps=None, lost_after_s=0.2, video_queue_len=4)
    cam.start()
    assert cam.read_frames(timeout_s=2.0)
    while not cam.ended:
        threading.Event().wait(0.05)
    frames = cam.read_frames()
    assert len(frames) <= 4 and cam.drops["video_queue"] > 0
    assert "stopped delivering frames" in cam.error
    assert cam.stop(2.0) and not any(t.is_alive() for t in cam.threads)


def test_webcam_that_cannot_open_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="could not be opened"):
        WebcamSource(str(tmp_path / "no-camera.mp4")).start()


def test_webcam_disappearing_mid_run_with_a_patched_capture(monkeypatch):
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture", flaky_capture(5))
    cam = WebcamSource(0, max_fps=None, lost_after_s=0.1)
    cam.start()
    while not cam.ended:
        threading.Event().wait(0.02)
    frames = cam.read_frames()
    assert [int(f.image[0, 0, 0]) for f in frames] == [1, 2, 3, 4, 5]
    assert frames[0].image.shape == (240, 640, 3)
    assert "camera 0 stopped delivering frames" in cam.error
    assert cam.stop(2.0)


def test_browser_source_stamps_on_arrival_and_converts_audio():
    clock = ReplayClock()
    src = BrowserSource(clock=clock, audio_queue_len=5)
    src.start()
    clock.advance_to(1.0)
    stereo = (np.ones((4800, 2)) * 16384).astype(np.int16)  # 0.1 s at 48 kHz
    src.push_audio(48000, stereo)
    clock.advance_to(1.1)
    src.push_audio(48000, stereo)
    a, b = src.read_audio()
    assert a.rate_hz == 16000 and a.samples.ndim == 1 and a.captured_at_s == 1.0
    assert b.t0_s == pytest.approx(a.t1_s) and b.captured_at_s == pytest.approx(1.1)
    assert np.allclose(b.samples[100:-100], 0.5, atol=0.01)
    src.push_frame(np.zeros((720, 1280, 3), np.uint8))
    (frame,) = src.read_frames()
    assert frame.image.shape == (360, 640, 3) and frame.t_s == pytest.approx(1.1)
    for _ in range(12):
        src.push_audio(16000, np.zeros(160, np.float32))
    assert len(src.read_audio()) == 5 and src.drops["audio_queue"] == 7
    src.end()
    assert src.finished and src.stop(2.0)


def test_combined_source_runs_while_one_part_is_alive_and_stop_joins_all(media):
    from realtime.sources import CombinedSource

    clock = SessionClock()
    cam = WebcamSource(str(media["video"]), clock, max_fps=None, lost_after_s=0.1)
    browser = BrowserSource(clock=clock)
    both = CombinedSource(cam, browser)
    assert both.has_audio and both.has_video
    both.start()
    while not cam.ended:
        threading.Event().wait(0.02)
    assert not both.ended and "stopped delivering frames" in both.error
    browser.push_audio(16000, np.zeros(800, np.float32))
    assert len(both.read_audio()) == 1 and both.read_frames()
    assert set(both.drops) >= {"camera:" + str(media["video"]) + ".video_queue",
                               "browser.audio_queue"}
    assert both.stop(2.0) and both.ended
    assert not any(t.is_alive() for t in both.threads)
    with pytest.raises(ValueError, match="share one clock"):
        CombinedSource(WebcamSource(0), BrowserSource())
