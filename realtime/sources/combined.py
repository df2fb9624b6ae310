"""One source made of several (a camera and a microphone), on one clock.

It is live while any part is: a camera that disappears sets ``error`` while the microphone
carries on (and the other way round). Drop counters are prefixed with the part's name.
"""

from __future__ import annotations

from realtime.sources.base import Source
from realtime.types import AudioChunk, VideoFrame


class CombinedSource(Source):
    def __init__(self, *parts: Source) -> None:
        if not parts:
            raise ValueError("CombinedSource needs at least one source")
        clocks = {id(p.clock) for p in parts}
        if len(clocks) != 1:
            raise ValueError("the parts of a CombinedSource must share one clock")
        super().__init__(parts[0].clock, audio_queue_len=1, video_queue_len=1)
        self.parts = parts
        self.name = "+".join(p.name for p in parts)
        self.has_audio = any(p.has_audio for p in parts)
        self.has_video = any(p.has_video for p in parts)

    def _start(self) -> None:
        started = []
        try:
            for part in self.parts:
                part.start()
                started.append(part)
        except Exception:
            for part in started:
                part.stop()
            raise
        self.started_at_s = min(p.started_at_s for p in self.parts)

    def stop(self, timeout_s: float = 2.0) -> bool:
        self._stop.set()
        self._mark_ended()
        return all([p.stop(timeout_s / len(self.parts)) for p in self.parts])

    def read_audio(self, timeout_s: float = 0.0) -> list[AudioChunk]:
        parts = [p for p in self.parts if p.has_audio]
        return [c for p in parts for c in p.read_audio(timeout_s / max(1, len(parts)))]

    def read_frames(self, timeout_s: float = 0.0) -> list[VideoFrame]:
        parts = [p for p in self.parts if p.has_video]
        return [f for p in parts for f in p.read_frames(timeout_s / max(1, len(parts)))]

    @property
    def ended(self) -> bool:
        return self._ended.is_set() or all(p.ended for p in self.parts)

    def pending_audio(self) -> int:
        return sum(p.pending_audio() for p in self.parts)

    def pending_frames(self) -> int:
        return sum(p.pending_frames() for p in self.parts)

    @property
    def error(self) -> str | None:
        errors = [p.error for p in self.parts if p.error]
        return "; ".join(errors) if errors else None

    @property
    def delivered_bytes(self) -> int:
        return sum(p.delivered_bytes for p in self.parts)

    @property
    def drops(self) -> dict[str, int]:
        return {f"{p.name}.{k}": v for p in self.parts for k, v in p.drops.items()}

    @property
    def threads(self):
        return tuple(t for p in self.parts for t in p.threads)

