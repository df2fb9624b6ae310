"""BrowserSource: frames and audio chunks pushed in by the dashboard's stream handlers.

There is no capture thread: the web server's handler threads call `push_frame` and
`push_audio`, which stamp the item on arrival (``captured_at_s = clock.now_s()``) and queue
it (a full queue drops the oldest item and counts it). Audio in any rate/layout/dtype becomes
the sources' format (`realtime.sources.audio`: 16 kHz mono float32 in [-1, 1]); its timeline
is kept contiguous (a chunk starts where the last ended, unless it arrives later than that,
leaving a gap). Pictures become RGB uint8 by the sources' one image convention
(`realtime.sources.image.to_rgb_uint8`: float images are read as [0, 1]). `end()` marks the
stream finished.

Nothing pushed in can end the session or raise at the page: a chunk or picture outside the
sources' bounds (`realtime.sources.audio.check_pcm`, `realtime.sources.image.check_picture`:
a rate of 4 Hz, a 1x1 frame, an unknown sample type) is checked before it is converted,
dropped and counted (``audio_invalid``, ``video_invalid``), its reason in `refusals`.
"""

from __future__ import annotations

import numpy as np

from realtime.clock import Clock
from realtime.sources.audio import RATE_HZ, Resampler16k
from realtime.sources.base import RefusedMedia, Source
from realtime.sources.image import to_frame_image
from realtime.types import AudioChunk, VideoFrame


class BrowserSource(Source):
    has_audio = True
    has_video = True

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        max_width: int = 640,
        audio_queue_len: int = 200,
        video_queue_len: int = 30,
    ) -> None:
        super().__init__(clock, audio_queue_len, video_queue_len)
        self.name = "browser"
        self.max_width = max_width
        self._resampler: Resampler16k | None = None
        self._next_t0_s: float | None = None

    def _start(self) -> None:
        pass

    def push_frame(self, image_rgb: np.ndarray) -> bool:
        """One picture as received: RGB/RGBA/grey, uint8 or float in [0, 1]. False when it
        was refused (dropped and counted as ``video_invalid``) or the stream has ended."""
        if self.ended:
            return False
        now_s = self.clock.now_s()
        try:
            image = to_frame_image(image_rgb, self.max_width)
        except RefusedMedia as refused:
            self._refuse(refused)
            return False
        self.video_queue.put(VideoFrame(now_s, image, now_s))
        return True

    def push_audio(self, rate_hz: int, samples: np.ndarray) -> bool:
        """PCM as received: (n,) or (n, channels), integer or float, at ``rate_hz``. False
        when it was refused (dropped and counted as ``audio_invalid``) or the stream has
        ended."""
        if self.ended:
            return False
        now_s = self.clock.now_s()
        try:
            if self._resampler is None or self._resampler.rate_hz != rate_hz:
                self._resampler = Resampler16k(rate_hz)
            mono = self._resampler(samples)
        except RefusedMedia as refused:
            self._refuse(refused)
            return False
        if len(mono) == 0:
            return True
        duration_s = len(mono) / RATE_HZ
        t0_s = now_s - duration_s
        if self._next_t0_s is not None and t0_s < self._next_t0_s:
            t0_s = self._next_t0_s
        self._next_t0_s = t0_s + duration_s
        self.audio_queue.put(AudioChunk(t0_s, mono, RATE_HZ, now_s))
        return True

    def end(self) -> None:
        """The browser stream closed: no more input."""
        self._mark_ended()
