"""FileSource: any video or audio file that FFmpeg reads (mp4, mkv, webm, wav, m4a, mp3...).

Decoding is PyAV. Audio is resampled to the sources' format (`realtime.sources.audio`: 16 kHz
mono float32 in [-1, 1]) and cut into ``chunk_s`` chunks; video frames become RGB uint8,
downscaled to at most ``max_width`` pixels wide and decimated to at most ``max_fps``
(decimation is a design choice, not a drop). Audio-only and
video-only files work. The file is opened twice, once per stream, and the two streams are
merged by the time each item becomes available (an audio chunk at its end, a frame at its
time), so items come out in time order whatever the file's interleaving.

Pacing: with ``realtime=True`` each item is handed over when the clock reaches its time
(``clock.sleep_until``), like a live device; with ``realtime=False`` as fast as the reader
takes them (a full queue makes the reader wait: nothing is dropped). ``captured_at_s`` is the
clock's time at hand-over. `items` yields the same stamped items without a thread, for the
pipeline's deterministic replay (`realtime.pipeline.Pipeline.run_to_end`).

Errors: a missing file raises FileNotFoundError; an empty, corrupt, stream-less or text file
raises `SourceError` with the path and the reason, from the constructor. A decode error
part-way, or a file that decodes to less than the duration it declares (a truncated
recording), ends the source with ``error`` set; everything decoded before it is kept.
A file whose audio rate is outside the sources' bounds (`realtime.sources.audio.check_rate`)
is refused by the constructor; a decoded audio frame or picture outside them part-way
(`realtime.sources.audio.check_pcm_size`, `realtime.sources.image.check_picture_size`: a
1x1 picture, a rate that changes to 4 Hz) is checked before it is converted, dropped and
counted (``audio_invalid``, ``video_invalid``), and the replay carries on.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from realtime.clock import Clock
from realtime.sources.audio import (
    AUDIO_INVALID,
    RATE_HZ,
    check_pcm_size,
    check_rate,
    from_frames,
    new_libswresample,
)
from realtime.sources.base import DEFAULT_MAX_FPS, RefusedMedia, Source, SourceError
from realtime.sources.image import check_picture_size, fit_width
from realtime.types import AudioChunk, VideoFrame

if TYPE_CHECKING:  # PyAV is imported where it is used: the model-only paths need none
    import av

log = logging.getLogger(__name__)

_AUDIO, _VIDEO = 0, 1


class FileSource(Source):
    def __init__(
        self,
        path: str | Path,
        realtime: bool = True,
        clock: Clock | None = None,
        *,
        chunk_s: float = 0.05,
        max_fps: float | None = DEFAULT_MAX_FPS,
        max_width: int = 640,
        repeat_until_s: float | None = None,
        audio_queue_len: int = 200,
        video_queue_len: int = 30,
    ) -> None:
        super().__init__(clock, audio_queue_len, video_queue_len)
        self.path = Path(path)
        self.realtime = realtime
        self.chunk_n = max(1, int(round(chunk_s * RATE_HZ)))
        self.max_fps = max_fps
        self.max_width = max_width
        self.repeat_until_s = repeat_until_s
        self.name = f"file:{self.path.name}"
        self.has_audio, self.has_video, self.duration_s, self._cut = _probe(self.path)

    # -- the stamped stream ----------------------------------------------------------
    def items(self) -> Iterator[AudioChunk | VideoFrame]:
        """Stamped audio chunks and frames in time order, paced by the clock when
        ``realtime``; ends early (``error`` set) on a decode error or when stopped."""
        base_s = self.begin_replay()
        for media in self.timeline():
            t_avail = base_s + media.available_s
            if self.realtime:
                if not self.clock.sleep_until(t_avail, self._stop):
                    return
            else:
                advance = getattr(self.clock, "advance_to", None)
                if advance is not None:
                    advance(t_avail)
            yield media.stamp(base_s, self.clock.now_s())

    def begin_replay(self) -> float:
        """Marks the source started without a thread; returns ``started_at_s``."""
        if not self._started:
            self._started = True
            self.started_at_s = self.clock.now_s()
        return self.started_at_s

    def timeline(self) -> Iterator[Media]:
        """Decoded, unstamped items in order of ``available_s`` (seconds from the start of
        the replay), looping until ``repeat_until_s`` when set; no pacing, no clock."""
        offset_s = 0.0
        for loop in itertools.count():
            if loop > 0 and (self.repeat_until_s is None or offset_s >= self.repeat_until_s):
                return
            end_s = offset_s
            for media in self._merged(offset_s):
                if self._stop.is_set():
                    return
                if self.repeat_until_s is not None and media.available_s > self.repeat_until_s:
                    return
                end_s = max(end_s, media.end_s)
                yield media
            if self._error is None and loop == 0 and not self._stop.is_set():
                self._check_complete(end_s - offset_s)
            if self._error is not None or end_s <= offset_s:  # never loop on nothing
                return
            offset_s = end_s

    def _check_complete(self, decoded_s: float) -> None:
        """A file that decodes to less than it declares was cut off: say so (``error``)."""
        short = decoded_s < self.duration_s - _tolerance_s(self.duration_s)
        if self.duration_s > 0 and (short or self._cut):
            self._error = (f"{self.path}: decoding ended at {decoded_s:.1f} s of the "
                           f"{self.duration_s:.2f} s the file declares (truncated?); "
                           "the rest is lost")
            log.warning("%s", self._error)

    def _merged(self, offset_s: float) -> Iterator[Media]:
        streams = []
        if self.has_audio:
            streams.append(self._guard(self._audio(offset_s)))
        if self.has_video:
            streams.append(self._guard(self._video(offset_s)))
        yield from heapq.merge(*streams, key=lambda m: (m.available_s, m.kind))

    def _guard(self, it: Iterator[Media]) -> Iterator[Media]:
        import av

        try:
            yield from it
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            self._error = f"{self.path}: decoding stopped part-way: {exc}"
            log.warning("%s", self._error)

    def _audio(self, offset_s: float) -> Iterator[Media]:
        import av

        with av.open(str(self.path)) as container:
            stream = container.streams.audio[0]
            start_s = _start_s(container)
            resampler = new_libswresample()
            buf = np.zeros(0, np.float32)
            t0_s: float | None = None
            sent = 0
            rate = stream.rate
            for frame in container.decode(stream):
                if not self._accept_audio(frame, rate):
                    continue
                if t0_s is None:
                    t0_s = max(0.0, (frame.time or 0.0) - start_s)
                buf = np.concatenate([buf, from_frames(resampler.resample(frame))])
                while len(buf) >= self.chunk_n:
                    yield Media.audio(offset_s + t0_s + sent / RATE_HZ, buf[: self.chunk_n])
                    sent += self.chunk_n
                    buf = buf[self.chunk_n:]
            if t0_s is not None:
                buf = np.concatenate([buf, from_frames(resampler.resample(None))])
                if len(buf):
                    yield Media.audio(offset_s + t0_s + sent / RATE_HZ, buf)

    def _video(self, offset_s: float) -> Iterator[Media]:
        import av

        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            start_s = _start_s(container)
            step_s = 0.0 if not self.max_fps else 1.0 / self.max_fps
            next_s = -1.0
            last_s = -1.0
            for frame in container.decode(stream):
                t_s = (frame.time if frame.time is not None else last_s + 1 / 25) - start_s
                last_s = t_s + start_s
                if t_s < next_s:
                    continue
                next_s = t_s + step_s * 0.98
                try:
                    check_picture_size(frame.width, frame.height, self.max_width)
                except RefusedMedia as refused:
                    self._refuse(refused)
                    continue
                width, height = fit_width(frame.width, frame.height, self.max_width)
                image = frame.to_ndarray(format="rgb24", width=width, height=height)
                yield Media.video(offset_s + max(0.0, t_s), image, step_s)

    def _accept_audio(self, frame: av.AudioFrame, rate_hz: int) -> bool:
        """Whether a decoded frame is within the bounds, at the stream's rate (one
        resampler serves the stream); a refused frame is counted (``audio_invalid``)."""
        try:
            if frame.sample_rate != rate_hz:
                raise RefusedMedia(AUDIO_INVALID, f"{self.path}: the audio changes from "
                                                 f"{rate_hz} to {frame.sample_rate} Hz "
                                                 "part-way")
            check_pcm_size(rate_hz, frame.samples, frame.layout.nb_channels)
        except RefusedMedia as refused:
            self._refuse(refused)
            return False
        return True

    # -- the capture thread ----------------------------------------------------------
    def _start(self) -> None:
        self._spawn(self._run, "reader")

    def _run(self) -> None:
        for item in self.items():
            queue = self.audio_queue if isinstance(item, AudioChunk) else self.video_queue
            if not queue.put(item, block=not self.realtime, stop=self._stop):
                return


class Media:
    """A decoded item before stamping; times are seconds from the start of the replay.
    available_s: when a live device would hand it over (an audio chunk's end, a frame's
    time); `stamp` makes the `AudioChunk` / `VideoFrame` on the session clock."""

    __slots__ = ("kind", "available_s", "end_s", "t_s", "data")

    def __init__(self, kind: int, t_s: float, available_s: float, end_s: float, data) -> None:
        self.kind, self.t_s, self.available_s, self.end_s, self.data = (
            kind, t_s, available_s, end_s, data)

    @classmethod
    def audio(cls, t0_s: float, samples: np.ndarray) -> Media:
        t1_s = t0_s + len(samples) / RATE_HZ
        return cls(_AUDIO, t0_s, t1_s, t1_s, samples.astype(np.float32, copy=True))

    @classmethod
    def video(cls, t_s: float, image: np.ndarray, step_s: float) -> Media:
        return cls(_VIDEO, t_s, t_s, t_s + step_s, image)

    @property
    def is_audio(self) -> bool:
        return self.kind == _AUDIO

    def stamp(self, base_s: float, now_s: float) -> AudioChunk | VideoFrame:
        if self.kind == _AUDIO:
            return AudioChunk(base_s + self.t_s, self.data, RATE_HZ, now_s)
        return VideoFrame(base_s + self.t_s, self.data, now_s)


def _start_s(container) -> float:
    return (container.start_time or 0) / 1_000_000


def _probe(path: Path) -> tuple[bool, bool, float, bool]:
    """(has_audio, has_video, duration_s, cut); raises a clear error for unusable files.
    ``cut``: the file is known to be shorter than its header says (a WAV); duration_s is
    then the declared duration."""
    import av

    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise SourceError(f"{path}: is a directory, not a media file")
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: the file is empty (0 bytes)")
    try:
        with av.open(str(path)) as container:
            if container.format.name in _NOT_MEDIA:
                raise SourceError(f"{path}: a text file ({container.format.long_name}), "
                                  "not an audio or video file")
            has_audio = _decodes(container, "audio")
            if has_audio:
                try:
                    check_rate(container.streams.audio[0].rate)
                except RefusedMedia as refused:
                    raise SourceError(f"{path}: {refused}") from None
        with av.open(str(path)) as container:
            has_video = _decodes(container, "video")
            duration_s = (container.duration or 0) / 1_000_000
    except av.error.FFmpegError as exc:
        raise SourceError(f"{path}: not a readable audio or video file ({exc})") from exc
    if not (has_audio or has_video):
        raise SourceError(f"{path}: no decodable audio or video stream (corrupt file?)")
    present = _riff_fraction_present(path)
    if present is not None:  # FFmpeg takes a WAV's length from its size, not its header
        duration_s /= present
    return has_audio, has_video, duration_s, present is not None


def _riff_fraction_present(path: Path) -> float | None:
    """For a RIFF/WAVE file whose ``data`` chunk is shorter than its header declares, the
    fraction of the declared data that is there; None otherwise (or not a WAV)."""
    with path.open("rb") as f:
        head = f.read(4096)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        chunk, size = head[pos:pos + 4], int.from_bytes(head[pos + 4:pos + 8], "little")
        if chunk == b"data":
            if size in (0, 0xFFFFFFFF):  # a stream written without a final length
                return None
            there = path.stat().st_size - (pos + 8)
            return there / size if 0 < there < size else None
        pos += 8 + size + (size & 1)
    return None


_NOT_MEDIA = frozenset({"tty"})  # FFmpeg renders any text file as "ANSI art" video


def _tolerance_s(declared_s: float) -> float:
    """How far short of its declared duration a complete file may decode (stream ends
    differ by a frame or an encoder's priming; containers round)."""
    return max(0.5, 0.02 * declared_s)


def _decodes(container, kind: str) -> bool:
    import av

    streams = getattr(container.streams, kind)
    if not streams:
        return False
    try:
        for _ in container.decode(streams[0]):
            return True
    except (av.error.FFmpegError, ValueError):
        return False
    return False
