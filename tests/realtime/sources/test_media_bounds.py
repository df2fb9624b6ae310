"""Adversarial media through every way it enters a session (issue #25, defects 1 and 10).

A chunk or picture outside the sources' bounds (a WAV whose header says 4 Hz, a chunk that
decodes to hours, an unknown sample type, a 1x1 or 20000x1 frame) is checked before it is
converted: dropped, counted (``audio_invalid``, ``video_invalid``) and its reason kept; the
session carries on. `test_adversarial_media_keeps_memory_bounded_and_other_sessions_intact`
sends them all in one fresh process and measures its peak memory, with a second session
replaying alongside.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from realtime.clock import ReplayClock, SessionClock
from realtime.dashboard.mic_chunks import ChunkStore
from realtime.sources import BrowserSource, FileSource, SourceError
from realtime.sources.audio import (
    MAX_CHUNK_S,
    Resampler16k,
    check_chunk,
    check_pcm,
    decode_chunk_file,
    resample_clip,
)
from realtime.sources.base import RefusedMedia
from realtime.sources.image import check_picture
from realtime.types import FeatureFrames
from tests.helpers import media

REPO = Path(__file__).resolve().parents[3]


def pcm_wav(path: Path, samples: np.ndarray, rate_hz: int, channels: int = 1) -> Path:
    """A 16-bit PCM WAV whose header says ``rate_hz`` (any value, as an attacker writes it)."""
    data = samples.astype("<i2").tobytes()
    header = (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt "
              + struct.pack("<IHHIIHH", 16, 1, channels, rate_hz, rate_hz * 2 * channels,
                            2 * channels, 16)
              + b"data" + struct.pack("<I", len(data)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + data)
    return path


def flac_bomb(path: Path, seconds: float = 600.0) -> Path:
    """A few KB of FLAC that decodes to ``seconds`` of silence, under a .wav name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=16000, layout="mono")
        block = np.zeros((1, 16000), np.int16)
        for i in range(int(seconds)):
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 16000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def tiny_video(path: Path, width: int, height: int, frames: int = 10) -> Path:
    """A raw-video file of ``frames`` pictures of ``width`` x ``height`` at 10 fps."""
    with av.open(str(path), "w", format="nut") as out:
        stream = out.add_stream("rawvideo", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 99, np.uint8),
                                               format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


# -- the one check -----------------------------------------------------------------------
@pytest.mark.parametrize("rate_hz, samples, reason", [
    (4, np.zeros(2400, np.int16), "at least 4000 Hz"),
    (2, np.zeros(24000, np.int16), "at least 4000 Hz"),
    (1_000_000, np.zeros(100, np.int16), "at most 192000 Hz"),
    (0, np.zeros(100, np.int16), "must be positive"),
    (float("nan"), np.zeros(100, np.int16), "must be positive"),
    (44100.5, np.zeros(100, np.int16), "must be positive"),
    (16000, np.zeros((100, 9), np.int16), "at most 8"),
    (16000, np.zeros((2, 3, 100), np.float32), r"\(n,\) mono"),
    (16000, np.zeros(100, np.int64), "numeric PCM"),
    (16000, np.zeros(100, np.complex64), "numeric PCM"),
    (16000, np.array(["a", "b"]), "numeric PCM"),
    (16000, np.zeros(int(MAX_CHUNK_S * 16000) + 1, np.float32), "too long"),
    # a billion samples that take no memory: refused from the shape, never touched
    (48000, np.broadcast_to(np.zeros(1, np.int16), (10**9,)), "too long"),
])
def test_chunks_outside_the_bounds_are_refused_before_conversion(rate_hz, samples, reason):
    with pytest.raises(RefusedMedia, match=reason) as refused:
        check_pcm(rate_hz, samples)
    assert refused.value.key == "audio_invalid"
    with pytest.raises(RefusedMedia, match=reason):  # the resampler checks the same way
        Resampler16k(rate_hz)(samples)


def test_chunks_within_the_bounds_pass_unconverted():
    x = np.zeros((480, 2), np.int16)
    assert check_pcm(48000, x) is x
    assert len(Resampler16k(4000)(np.zeros(400, np.uint8))) > 0
    clip = np.zeros(int(3 * MAX_CHUNK_S * 8000), np.float32)  # a clip is fed in pieces
    assert len(resample_clip(clip, 8000)) == pytest.approx(3 * MAX_CHUNK_S * 16000, abs=64)


# -- browser audio and frames ------------------------------------------------------------
def test_a_4_hz_browser_chunk_is_dropped_counted_and_the_session_goes_on(tmp_path):
    store = ChunkStore(tmp_path / "uploads")
    chunk = pcm_wav(tmp_path / "uploads" / "a1" / "audio.wav", np.zeros(2400), 4)  # 4.8 KB
    assert store.take(chunk) is None  # refused from its header, never decoded
    assert store.refused == 1 and store.dropped == 1 and "4000 Hz" in store.last_refusal
    assert not chunk.exists()
    src = BrowserSource(clock=ReplayClock())
    src.start()
    assert not src.push_audio(4, np.zeros(2400, np.int16))  # decoded elsewhere: refused too
    assert src.push_audio(48000, np.zeros(4800, np.int16))
    (good,) = src.read_audio()
    check_chunk(good)
    assert len(good.samples) == pytest.approx(1600, abs=64)
    assert src.drops["audio_invalid"] == 1 and "4000 Hz" in src.refusals["audio_invalid"]
    assert src.error is None and not src.ended
    assert src.stop(2.0)


def test_a_chunk_that_decodes_to_hours_stops_decoding_at_the_bound(tmp_path):
    bomb = flac_bomb(tmp_path / "uploads" / "b" / "audio.wav")
    assert bomb.stat().st_size < 200_000  # 19 MB once decoded (600 s of 16 kHz int16)
    with pytest.raises(RefusedMedia, match="too long"):
        decode_chunk_file(bomb)
    store = ChunkStore(tmp_path / "uploads")
    assert store.take(bomb) is None and store.refused == 1 and not bomb.exists()


def test_an_undecodable_chunk_is_refused_not_raised(tmp_path):
    store = ChunkStore(tmp_path / "uploads")
    junk = tmp_path / "uploads" / "c" / "audio.wav"
    junk.parent.mkdir(parents=True)
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    assert store.take(junk) is None and store.refused == 1 and not junk.exists()


def test_a_good_chunk_decodes_as_before(tmp_path):
    samples = (np.sin(np.arange(9600) / 10.0) * 8000).astype(np.int16).reshape(-1, 2)
    path = pcm_wav(tmp_path / "u" / "d" / "audio.wav", samples.reshape(-1), 48000, channels=2)
    rate, data = ChunkStore(tmp_path / "u").take(path)
    assert rate == 48000 and data.dtype == np.int16 and np.array_equal(data, samples)


@pytest.mark.parametrize("image", [
    np.zeros((1, 1, 3), np.uint8),
    np.zeros((1, 20000, 3), np.uint8),
    np.zeros((8, 20000, 3), np.uint8),  # 640x0 once downscaled
    np.zeros((20000, 1, 3), np.uint8),
    np.zeros((10, 10, 2), np.uint8),
    np.zeros((10, 10, 3), np.int32),
    np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (100_000, 100_000, 3)),  # 30 GB, unread
])
def test_a_bad_browser_frame_is_dropped_and_counted(image):
    with pytest.raises(RefusedMedia):
        check_picture(image, 640)
    src = BrowserSource(clock=ReplayClock())
    src.start()
    assert not src.push_frame(image)
    assert src.push_frame(np.zeros((480, 640, 3), np.uint8))
    assert [f.image.shape for f in src.read_frames()] == [(480, 640, 3)]
    assert src.drops["video_invalid"] == 1 and src.refusals["video_invalid"]
    assert src.error is None and src.stop(2.0)


# -- files (--source, uploads) -----------------------------------------------------------
def test_a_file_of_tiny_frames_is_replayed_with_its_frames_dropped(tmp_path):
    src = FileSource(tiny_video(tmp_path / "tiny.nut", 2, 2), realtime=False,
                     clock=ReplayClock())
    assert list(src.items()) == []
    assert src.drops["video_invalid"] == 10 and "2x2" in src.refusals["video_invalid"]


@pytest.mark.parametrize("rate_hz, reason", [(4, "at least 4000 Hz"),
                                             (1_000_000, "at most 192000 Hz")])
def test_a_file_at_an_absurd_rate_is_refused_at_once(tmp_path, rate_hz, reason):
    with pytest.raises(SourceError, match=reason):
        FileSource(pcm_wav(tmp_path / "r.wav", np.zeros(2400), rate_hz), realtime=False,
                   clock=ReplayClock())


# -- a whole session's worth, measured ---------------------------------------------------
class FaceIn5:
    """The real face extractor, its rows cut to the test model's 5 video features."""

    def __init__(self) -> None:
        from realtime.extract.face import FaceExtractor

        self.face = FaceExtractor()
        self.insert_frame, self.close = self.face.insert_frame, self.face.close

    @property
    def drops(self) -> int:
        return self.face.drops

    def process_iter(self):
        out = self.face.process_iter()
        return None if out is None else FeatureFrames(out.t_s, out.values[:, -5:],
                                                      out.computed_at_s, out.captured_at_s)


def test_bad_frames_never_end_a_sessions_video():
    from realtime.engine import Engine
    from realtime.extract.stages import Stages
    from realtime.pipeline import Pipeline
    from tests.realtime.test_pipeline import LAYOUT, FakeAcoustic, FakeASR, MeanModel, encode

    engine = Engine(model=MeanModel(), model_name="mean-test-model", device="cpu",
                    layout=LAYOUT, encode_words=encode,
                    stages=Stages(new_asr=FakeASR, new_acoustic=FakeAcoustic, new_face=FaceIn5))
    clock = SessionClock()
    source = BrowserSource(clock=clock)
    pipe = Pipeline(source, engine)
    pipe.start()
    try:
        for shape in ((1, 1, 3), (1, 20000, 3), (8, 20000, 3)):
            source.push_frame(np.zeros(shape, np.uint8))
            threading.Event().wait(0.2)
        source.push_frame(media.no_face_frame())
        deadline = clock.now_s() + 10.0
        while clock.now_s() < deadline and pipe.last_input_s != pipe.last_input_s:
            threading.Event().wait(0.05)
        status = pipe.status()
        assert status.error is None and status.running
        assert pipe.last_input_s == pipe.last_input_s  # the good frame reached the features
        assert status.drops["video_invalid"] == 3
    finally:
        assert pipe.stop(2.0)


def test_adversarial_media_keeps_memory_bounded_and_other_sessions_intact(tmp_path):
    """In a fresh process (so its peak memory is this test's alone): every kind of bad input
    through every way in, while a second session replays a recording."""
    wav = media.speech_wav(tmp_path, "hello there, how are you today", rate_hz=44100)
    code = (f"from tests.realtime.sources.test_media_bounds import attack; "
            f"attack({str(tmp_path)!r}, {str(wav)!r})")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["growth_mb"] < 100, report
    assert report["other_session"] == report["other_session_alone"] and report["other_session"]
    assert report["chunks"] == {"taken": 0, "refused": 4}, report
    assert report["browser"] == {"audio_invalid": 4, "video_invalid": 5,
                                 "audio_out_s": 0.5, "frames_out": 1}, report
    assert report["file_video_invalid"] == 10 and report["files_refused"] == 2, report


def attack(folder: str, speech: str) -> None:
    """The body of the test above, run in its own process; prints one JSON line."""
    import resource

    tmp = Path(folder)

    def peak_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def replay() -> list[tuple[str, float, int]]:
        src = FileSource(speech, realtime=False, clock=ReplayClock())
        return [(type(i).__name__, round(i.t0_s, 4), len(i.samples)) for i in src.items()]

    alone = replay()  # also warms every codec and buffer the attack goes through
    BrowserSource(clock=ReplayClock()).push_audio(48000, np.zeros(24000, np.int16))
    base_mb = peak_mb()

    other: list = []
    thread = threading.Thread(target=lambda: other.extend(replay()))
    thread.start()

    store = ChunkStore(tmp / "uploads")
    chunks = [pcm_wav(tmp / "uploads" / "a" / "audio.wav", np.zeros(2400), 4),  # 4.8 KB
              pcm_wav(tmp / "uploads" / "b" / "audio.wav", np.zeros(24000), 2),  # 48 KB
              pcm_wav(tmp / "uploads" / "c" / "audio.wav", np.zeros(2400), 1),
              flac_bomb(tmp / "uploads" / "d" / "audio.wav")]
    taken = [store.take(c) for c in chunks]

    browser = BrowserSource(clock=ReplayClock())
    browser.start()
    for rate, samples in ((4, np.zeros(2400, np.int16)), (2, np.zeros(24000, np.int16)),
                          (48000, np.broadcast_to(np.zeros(1, np.int16), (10**9,))),
                          (16000, np.zeros(100, np.int64)),
                          (48000, np.zeros(24000, np.int16))):  # the one good chunk
        browser.push_audio(rate, samples)
    for shape in ((1, 1, 3), (1, 20000, 3), (8, 20000, 3), (20000, 1, 3)):
        browser.push_frame(np.zeros(shape, np.uint8))
    browser.push_frame(np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (100_000, 100_000, 3)))
    browser.push_frame(np.zeros((480, 640, 3), np.uint8))
    audio_out = sum(len(c.samples) for c in browser.read_audio()) / 16000
    frames_out = len(browser.read_frames())

    tiny = FileSource(tiny_video(tmp / "tiny.nut", 2, 2), realtime=False, clock=ReplayClock())
    list(tiny.items())
    refused = 0
    for rate in (4, 1_000_000):
        try:
            FileSource(pcm_wav(tmp / f"r{rate}.wav", np.zeros(2400), rate), realtime=False)
        except SourceError:
            refused += 1
    thread.join()
    print(json.dumps({
        "growth_mb": peak_mb() - base_mb,
        "other_session": other, "other_session_alone": alone,
        "chunks": {"taken": sum(t is not None for t in taken), "refused": store.refused},
        "browser": {k: browser.drops.get(k, 0) for k in ("audio_invalid", "video_invalid")}
        | {"audio_out_s": round(audio_out, 1), "frames_out": frames_out},
        "file_video_invalid": tiny.drops.get("video_invalid", 0), "files_refused": refused,
    }))
