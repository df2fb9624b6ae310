"""Test media made at test time: speech, face videos, Chromium fake-camera files, bad inputs.

Every generator writes into the folder it is given (use pytest's ``tmp_path``) and returns the
new file's path. Expensive generations are made once per test session in a private cache folder
(removed at exit) and copied, so a test may modify its copy freely. Nothing here is committed
as a fixture; the only bundled media is assets/demo.mp4 (see scripts/make_demo_recording.py).

    from tests.helpers import media
    wav = media.speech_wav(tmp_path, "I love it", rate_hz=16000)
    mp4 = media.face_video(tmp_path, seconds=2.0, fps=15, with_audio_text="Hello there")
    assert media.wer("hello there", "hello their") == 0.5

Needs the Debian packages ffmpeg and espeak-ng (a clear RuntimeError says which is missing).
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from realtime.eval.wer import normalize_words, wer  # noqa: F401 (re-exported)
from realtime.sources.audio import RATE_HZ, pcm_to_float

# Some names are only re-exported: tests build frames, check faces or probe files with them.
from scripts.make_demo_recording import FPS as DEMO_FPS  # noqa: F401 (re-exported)
from scripts.make_demo_recording import (
    SIZE,
    ScriptLine,
    count_faces,  # noqa: F401 (re-exported)
    decode_frames,
    encode_video,
    espeak,
    face_frame,  # noqa: F401 (re-exported)
    face_frames,
    face_landmarker_path,  # noqa: F401 (re-exported)
    no_face_frame,
    parse_script,
    probe,
    read_wav,
    require_tool,
    run,
    write_wav,
)

REPO = Path(__file__).resolve().parents[2]
DEMO_MP4 = REPO / "assets" / "demo.mp4"
DEMO_SCRIPT = REPO / "assets" / "demo_script.txt"

POSITIVE_TEXT = "I really love this, it is wonderful and I am so happy."
NEGATIVE_TEXT = "This is terrible, I hate it and it makes me angry."

AUDIO_EXTS = ("wav", "m4a", "mp3")
VIDEO_EXTS = ("mp4", "mkv", "webm")

# ffmpeg codec options per container suffix: (video args, audio args, container args).
_H264 = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-pix_fmt", "yuv420p")
_VP8 = ("-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "600k",
        "-pix_fmt", "yuv420p")
_CODECS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "mp4": (_H264, ("-c:a", "aac", "-b:a", "64k"), ("-movflags", "+faststart")),
    "mkv": (_H264, ("-c:a", "aac", "-b:a", "64k"), ()),
    "webm": (_VP8, ("-c:a", "libopus", "-b:a", "48k"), ()),
    "wav": ((), ("-c:a", "pcm_s16le"), ()),
    "m4a": ((), ("-c:a", "aac", "-b:a", "64k"), ("-movflags", "+faststart")),
    "mp3": ((), ("-c:a", "libmp3lame", "-b:a", "64k"), ()),
}


# ---------------------------------------------------------------------------------------------
# The bundled demo


def demo_script() -> tuple[ScriptLine, ...]:
    """The sentences spoken in assets/demo.mp4 with their start/end seconds and polarity."""
    return parse_script(DEMO_SCRIPT.read_text())


def demo_text() -> str:
    """Everything said in assets/demo.mp4, one string (the WER reference)."""
    return " ".join(line.text for line in demo_script())


# ---------------------------------------------------------------------------------------------
# Word error rate


# normalize_words and wer live in realtime.eval.wer (the benchmarks use them too)


# ---------------------------------------------------------------------------------------------
# Session cache


@lru_cache(maxsize=1)
def _cache_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="test-media-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _key(*parts: object) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:10]


def _cached(name: str, make: Callable[[Path], Path]) -> Path:
    """Make `name` once per session in the cache folder (make(path) writes it there)."""
    path = _cache_dir() / name
    if not path.exists():
        try:
            make(path)
        except BaseException:
            path.unlink(missing_ok=True)  # never leave a half-written file to be reused
            raise
    return path


def _copy_into(tmp: Path, cached: Path) -> Path:
    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(cached, tmp / cached.name))


def _ffmpeg_convert(src: Path, out: Path, *args: str) -> Path:
    exe = require_tool("ffmpeg", "ffmpeg")
    run([exe, "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), *args, str(out)])
    return out


# ---------------------------------------------------------------------------------------------
# Audio


@lru_cache(maxsize=64)
def _speech_file(text: str, rate_hz: int, voice: str, channels: int) -> Path:
    def make(out: Path) -> Path:
        pcm, native_hz = espeak(text, voice)
        native = write_wav(out.with_suffix(".native.wav"), pcm, native_hz)
        return _ffmpeg_convert(native, out, "-ar", str(rate_hz), "-ac", str(channels),
                               "-c:a", "pcm_s16le", "-fflags", "+bitexact")

    return _cached(f"speech-{rate_hz}hz-{channels}ch-{_key(text, voice)}.wav", make)


def speech_samples(text: str, rate_hz: int = RATE_HZ, voice: str = "en-us") -> np.ndarray:
    """espeak-ng speaking `text`: float32 mono samples in [-1, 1] at rate_hz (a fresh copy)."""
    pcm, _ = read_wav(_speech_file(text, rate_hz, voice, 1))
    return pcm_to_float(pcm)


def speech_wav(
    tmp: Path, text: str, rate_hz: int = RATE_HZ, voice: str = "en-us", channels: int = 1
) -> Path:
    """espeak-ng speaking `text` as a 16-bit PCM WAV at rate_hz with `channels` channels."""
    return _copy_into(tmp, _speech_file(text, rate_hz, voice, channels))


def sentence_then_pause_wav(tmp: Path, text: str, rate_hz: int = RATE_HZ,
                            pause_s: float = 1.5) -> Path:
    """espeak-ng speaking `text` once, then `pause_s` of silence (16-bit PCM mono): played
    in a loop (Chromium's fake microphone), a speaker who pauses between sentences."""
    pcm, _ = read_wav(_speech_file(text, rate_hz, "en-us", 1))
    out = Path(tmp) / f"sentence-{_key(text)}-{rate_hz}hz-pause{pause_s:g}s.wav"
    Path(tmp).mkdir(parents=True, exist_ok=True)
    return write_wav(out, np.concatenate([pcm, np.zeros(round(pause_s * rate_hz), np.int16)]),
                     rate_hz)


def stereo_44k_wav(tmp: Path, text: str = POSITIVE_TEXT) -> Path:
    """Speech as a 44.1 kHz stereo WAV (an input the pipeline must downmix and resample)."""
    return speech_wav(tmp, text, rate_hz=44100, channels=2)


def silence_wav(tmp: Path, seconds: float = 2.0, rate_hz: int = RATE_HZ) -> Path:
    """Digital silence, 16-bit PCM mono."""
    out = Path(tmp) / f"silence-{rate_hz}hz-{seconds:g}s.wav"
    Path(tmp).mkdir(parents=True, exist_ok=True)
    return write_wav(out, np.zeros(round(seconds * rate_hz), np.int16), rate_hz)


def audio_only(tmp: Path, ext: str = "wav", text: str = POSITIVE_TEXT) -> Path:
    """Speech in an audio-only file: ext in wav (PCM 16 kHz) / m4a (AAC) / mp3, mono 16 kHz."""
    if ext not in AUDIO_EXTS:
        raise ValueError(f"ext must be one of {AUDIO_EXTS}, got {ext!r}")

    def make(out: Path) -> Path:
        return _ffmpeg_convert(_speech_file(text, RATE_HZ, "en-us", 1), out, *_CODECS[ext][1],
                               *_CODECS[ext][2])

    return _copy_into(tmp, _cached(f"audio-{_key(text)}.{ext}", make))


# ---------------------------------------------------------------------------------------------
# Video


def _n_frames(seconds: float, fps: float) -> int:
    if seconds <= 0 or fps <= 0:
        raise ValueError(f"seconds and fps must be > 0, got {seconds}, {fps}")
    return max(1, round(seconds * fps))


def _padded_speech(text: str, seconds: float, rate_hz: int = RATE_HZ) -> np.ndarray:
    """Speech starting at 0.3 s, padded with silence to exactly `seconds` (int16 mono)."""
    pcm, _ = read_wav(_speech_file(text, rate_hz, "en-us", 1))
    lead = round(0.3 * rate_hz)
    total = round(seconds * rate_hz)
    if lead + len(pcm) > total:
        need_s = (lead + len(pcm)) / rate_hz
        raise ValueError(f"speech {text!r} needs {need_s:.2f} s, video is only {seconds} s")
    out = np.zeros(total, np.int16)
    out[lead : lead + len(pcm)] = pcm
    return out


def _video_file(
    kind: str, seconds: float, fps: float, size: tuple[int, int], text: str | None, ext: str
) -> Path:
    if ext not in VIDEO_EXTS:
        raise ValueError(f"ext must be one of {VIDEO_EXTS}, got {ext!r}")
    n = _n_frames(seconds, fps)

    def make(out: Path) -> Path:
        if kind == "face":
            frames = face_frames(n, fps, size)
        else:
            frames = (no_face_frame(size) for _ in range(n))
        video_args, audio_args, container_args = _CODECS[ext]
        wav = None
        if text is not None:
            wav = write_wav(out.with_suffix(".speech.wav"), _padded_speech(text, n / fps), RATE_HZ)
        return encode_video(out, frames, fps, size, audio=wav, video_args=video_args,
                            audio_args=audio_args, extra_args=container_args)

    name = f"{kind}-{seconds:g}s-{fps:g}fps-{size[0]}x{size[1]}-{_key(text)}.{ext}"
    return _cached(name, make)


def face_video(
    tmp: Path,
    seconds: float = 2.0,
    fps: float = 15,
    with_audio_text: str | None = None,
    size: tuple[int, int] = SIZE,
    ext: str = "mp4",
) -> Path:
    """The moving astronaut face; with speech of `with_audio_text` (from 0.3 s) if given.

    ext: mp4 (H.264 + AAC), mkv (H.264 + AAC) or webm (VP8 + Opus). The audio track is 16 kHz
    mono, padded with silence to the video's length; raises ValueError if the speech is longer.
    """
    return _copy_into(tmp, _video_file("face", seconds, fps, size, with_audio_text, ext))


def no_face_video(
    tmp: Path, seconds: float = 2.0, fps: float = 15, size: tuple[int, int] = SIZE,
    ext: str = "mp4",
) -> Path:
    """A video without any face in it (a still of the photo's flag), no audio."""
    return _copy_into(tmp, _video_file("noface", seconds, fps, size, None, ext))


def video_only(tmp: Path, ext: str = "mp4", seconds: float = 2.0, fps: float = 15) -> Path:
    """The face video without an audio stream: ext in mp4 / mkv / webm."""
    return face_video(tmp, seconds, fps, with_audio_text=None, ext=ext)


def face_y4m(
    tmp: Path, seconds: float = 2.0, fps: int = 15, size: tuple[int, int] = SIZE
) -> Path:
    """Uncompressed YUV4MPEG2 4:2:0 face video for Chromium's --use-file-for-fake-video-capture.

    Chromium loops it. It is big (width * height * 1.5 bytes per frame), so keep it short.
    """
    n = _n_frames(seconds, fps)
    width, height = size
    if width % 2 or height % 2:
        raise ValueError(f"4:2:0 needs an even width and height, got {size}")

    def make(out: Path) -> Path:
        # ffmpeg converts RGB -> planar I420; we write a minimal Y4M header ourselves
        # (ffmpeg's adds A0:0 and an XYSCSS extension that not every reader accepts).
        raw = encode_video(out.with_suffix(".yuv"), face_frames(n, fps, size), fps, size,
                           video_args=("-pix_fmt", "yuv420p", "-f", "rawvideo"), extra_args=())
        frame_bytes = width * height * 3 // 2
        data = raw.read_bytes()
        with out.open("wb") as f:
            f.write(f"YUV4MPEG2 W{width} H{height} F{int(fps)}:1 Ip A1:1 C420jpeg\n".encode())
            for i in range(n):
                f.write(b"FRAME\n" + data[i * frame_bytes : (i + 1) * frame_bytes])
        raw.unlink()
        return out

    return _copy_into(tmp, _cached(f"face-{seconds:g}s-{fps}fps-{width}x{height}.y4m", make))


# ---------------------------------------------------------------------------------------------
# Bad inputs


def empty_file(tmp: Path, suffix: str = ".mp4") -> Path:
    """A zero-byte file with the given suffix (".mp4", ".wav", ...)."""
    Path(tmp).mkdir(parents=True, exist_ok=True)
    out = Path(tmp) / f"empty{suffix}"
    out.write_bytes(b"")
    return out


def corrupt_file(tmp: Path, suffix: str = ".mp4", kind: str = "random") -> Path:
    """A broken media file named *suffix.

    kind="random": 64 KiB of (seeded) random bytes, never decodable.
    kind="truncated": the first half of a valid file of that type made without faststart, so
    for .mp4/.m4a the index (moov) is lost and nothing decodes; for .wav/.mp3/.mkv/.webm a
    decodable prefix remains (a recording cut off mid-way).
    """
    Path(tmp).mkdir(parents=True, exist_ok=True)
    ext = suffix.lstrip(".")
    out = Path(tmp) / f"corrupt-{kind}.{ext}"
    if kind == "random":
        out.write_bytes(np.random.default_rng(1234).bytes(64 * 1024))
        return out
    if kind != "truncated":
        raise ValueError(f"kind must be 'random' or 'truncated', got {kind!r}")
    if ext in AUDIO_EXTS:
        whole = audio_only(Path(tmp) / "whole", ext)
        if ext == "m4a":
            whole = _ffmpeg_convert(whole, whole.with_name("slow.m4a"), "-c", "copy")
    elif ext in VIDEO_EXTS:
        whole = encode_video(
            Path(tmp) / f"whole.{ext}", face_frames(30, 15, SIZE), 15, SIZE,
            video_args=_CODECS[ext][0], extra_args=(),
        )
    else:
        known = AUDIO_EXTS + VIDEO_EXTS
        raise ValueError(f"no 'truncated' maker for {suffix!r}; use one of {known}")
    data = whole.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    return out


def streams(path: Path) -> list[tuple[str, str]]:
    """(codec_type, codec_name) of each stream in a media file, from ffprobe."""
    return [(s["codec_type"], s["codec_name"]) for s in probe(path)["streams"]]


def duration_s(path: Path) -> float:
    """Container duration in seconds, from ffprobe."""
    return float(probe(path)["format"]["duration"])


def stream_info(path: Path, codec_type: str) -> dict:
    """ffprobe's description of the first stream of codec_type ("audio"/"video")."""
    found = [s for s in probe(path)["streams"] if s["codec_type"] == codec_type]
    if not found:
        raise ValueError(f"{path} has no {codec_type} stream")
    return found[0]


def sampled_frames(path: Path, count: int) -> list[np.ndarray]:
    """`count` RGB frames spread evenly over a video (decoded with ffmpeg)."""
    info = stream_info(path, "video")
    num, den = info["r_frame_rate"].split("/")
    total = int(info.get("nb_frames") or duration_s(path) * float(num) / float(den))
    return [frame.copy() for _, frame in decode_frames(path, max(1, total // count))][:count]


def decode_audio(path: Path, rate_hz: int = RATE_HZ) -> np.ndarray:
    """The first audio stream of a media file as float32 mono samples at rate_hz (ffmpeg)."""
    exe = require_tool("ffmpeg", "ffmpeg")
    raw = run([exe, "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1",
               "-ar", str(rate_hz), "-f", "s16le", "-c:a", "pcm_s16le", "-"])
    return pcm_to_float(np.frombuffer(raw, "<i2"))
