"""Live device sources: WebcamSource (an OpenCV capture thread) and MicrophoneSource (a
sounddevice callback into a bounded ring of chunks, plus a watchdog thread).

Both stamp items with the session clock when they arrive. A camera that stops delivering
frames, or a microphone whose callbacks stop, ends the source with ``error`` set; nothing is
raised at the user (the failure is logged as a warning). `stop()` releases the device and
joins the threads. Both deliver the sources' formats (`realtime.sources.audio`,
`realtime.sources.image`).
"""

from __future__ import annotations

import logging

import numpy as np

from realtime.clock import Clock
from realtime.sources.audio import RATE_HZ, Resampler16k
from realtime.sources.base import DEFAULT_MAX_FPS, RefusedMedia, Source, SourceError
from realtime.sources.image import check_picture, downscale
from realtime.types import AudioChunk, VideoFrame

log = logging.getLogger(__name__)


class WebcamSource(Source):
    """Frames from ``cv2.VideoCapture(device)`` (an index, or any path OpenCV opens).

    max_fps: frames arriving sooner than 1/max_fps after the last kept one are skipped
        (decimation, not counted as drops); None keeps every frame.
    lost_after_s: consecutive read failures for this long (session time) mean the camera
        has gone: the source ends with ``error`` set.
    """

    has_video = True

    def __init__(
        self,
        device: int | str = 0,
        clock: Clock | None = None,
        *,
        max_fps: float | None = DEFAULT_MAX_FPS,
        max_width: int = 640,
        lost_after_s: float = 2.0,
        video_queue_len: int = 30,
    ) -> None:
        super().__init__(clock, audio_queue_len=1, video_queue_len=video_queue_len)
        self.device = device
        self.name = f"camera:{device}"
        self.max_fps = max_fps
        self.max_width = max_width
        self.lost_after_s = lost_after_s
        self._capture = None

    def _start(self) -> None:
        import cv2

        capture = cv2.VideoCapture(self.device)
        if not capture.isOpened():
            capture.release()
            raise SourceError(
                f"camera {self.device!r} could not be opened (is it connected, and free?)")
        self._capture = capture
        self._spawn(self._run, "capture")

    def _run(self) -> None:
        import cv2

        try:
            self._capture_frames(cv2, self._capture)
        finally:  # the thread owns the device: it releases it, however late it ends
            self._release()

    def _capture_frames(self, cv2, capture) -> None:
        step_s = 1.0 / self.max_fps if self.max_fps else 0.0
        next_s = -1.0
        failing_since_s: float | None = None
        while not self._stop.is_set():
            ok, bgr = capture.read()
            now_s = self.clock.now_s()
            if not ok or bgr is None:
                if failing_since_s is None:
                    failing_since_s = now_s
                if now_s - failing_since_s >= self.lost_after_s or not capture.isOpened():
                    self._fail(f"camera {self.device!r} stopped delivering frames "
                               "(disconnected?)")
                    return
                self._stop.wait(0.02)
                continue
            failing_since_s = None
            if now_s < next_s:
                continue
            next_s = now_s + step_s * 0.9
            try:  # a camera's picture is in the bounds, checked as any other
                check_picture(bgr, self.max_width)
            except RefusedMedia as refused:
                self._refuse(refused)
                continue
            rgb = cv2.cvtColor(downscale(bgr, self.max_width), cv2.COLOR_BGR2RGB)
            self.video_queue.put(VideoFrame(now_s, rgb, now_s))

    def _close(self) -> None:
        # The capture thread owns the device while it runs; release it after the join.
        pass

    def stop(self, timeout_s: float = 2.0) -> bool:
        joined = super().stop(timeout_s)
        if joined:
            self._release()
        return joined

    def _release(self) -> None:
        with self._lock:
            capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()


class MicrophoneSource(Source):
    """Audio from a PortAudio input (sounddevice), 16 kHz mono float32 chunks.

    device: a sounddevice name or index; "default" (or None) is the system default.
    The stream is opened at 16 kHz; a device that refuses it is opened at its own rate and
    resampled. The PortAudio callback only stamps and queues (a full queue drops the oldest
    chunk); input overflows are counted as ``mic_overflow`` drops. A watchdog thread ends
    the source when callbacks stop for ``lost_after_s``.
    """

    has_audio = True

    def __init__(
        self,
        device: str | int | None = "default",
        clock: Clock | None = None,
        *,
        block_s: float = 0.05,
        lost_after_s: float = 2.0,
        audio_queue_len: int = 200,
    ) -> None:
        super().__init__(clock, audio_queue_len=audio_queue_len, video_queue_len=1)
        self.device = None if device in (None, "default") else device
        self.name = f"mic:{device}"
        self.block_s = block_s
        self.lost_after_s = lost_after_s
        self._stream = None
        self._resampler: Resampler16k | None = None
        self._sent = 0
        self._t0_s: float | None = None
        self._last_callback_s: float | None = None

    def _start(self) -> None:
        import sounddevice as sd

        errors = []
        for rate in (RATE_HZ, None):
            try:
                if rate is None:
                    info = sd.query_devices(self.device, "input")
                    rate = int(info["default_samplerate"])
                stream = sd.InputStream(
                    device=self.device, channels=1, dtype="float32", samplerate=rate,
                    blocksize=max(1, int(rate * self.block_s)), callback=self._callback,
                    latency="low")
                break
            except (sd.PortAudioError, ValueError) as exc:
                log.debug("microphone %r at %s Hz: %s", self.device, rate, exc)
                errors.append(str(exc))
        else:
            raise SourceError(
                f"microphone {self.name[4:]!r} could not be opened: {'; '.join(errors)}. "
                "List devices with: python -m sounddevice")
        if int(stream.samplerate) != RATE_HZ:
            log.info("microphone %r opened at %d Hz, resampled to %d Hz", self.device,
                     int(stream.samplerate), RATE_HZ)
        self._resampler = Resampler16k(int(stream.samplerate))
        self._stream = stream
        stream.start()
        self._spawn(self._watchdog, "watchdog")

    def _callback(self, indata: np.ndarray, frames: int, time_info, status) -> None:
        now_s = self.clock.now_s()
        self._last_callback_s = now_s
        if status.input_overflow:
            log.debug("microphone %r: input overflow", self.device)
            self._count_drop("mic_overflow")
        try:  # a device's block is in the bounds, checked as any other chunk
            samples = self._resampler(indata[:, 0].copy())
        except RefusedMedia as refused:
            self._refuse(refused)
            return
        if len(samples) == 0:
            return
        if self._t0_s is None:
            self._t0_s = now_s - frames / self._resampler.rate_hz
        t0_s = self._t0_s + self._sent / RATE_HZ
        self._sent += len(samples)
        self.audio_queue.put(AudioChunk(t0_s, samples, RATE_HZ, now_s))

    def _watchdog(self) -> None:
        started_s = self.clock.now_s()
        while not self._stop.wait(0.1):
            now_s = self.clock.now_s()
            last_s = self._last_callback_s if self._last_callback_s is not None else started_s
            stream = self._stream
            if stream is not None and not stream.active and not self._stop.is_set():
                self._fail(f"microphone {self.name[4:]!r} stopped (device lost?)")
                return
            if now_s - last_s > self.lost_after_s:
                self._fail(f"microphone {self.name[4:]!r} delivered no audio for "
                           f"{self.lost_after_s:.1f} s (disconnected?)")
                return

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception as exc:  # noqa: BLE001 - a lost device may fail to close; stop anyway
                log.warning("microphone %r did not close cleanly: %s", self.device, exc)
