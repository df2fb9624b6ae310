"""The one way to build a capture source: `make_source(SourceSpec)`.

The command line (`realtime.__main__`) and the dashboard (`realtime.dashboard.controller`)
each turn their own input (arguments, the page's choice) into a `SourceSpec`; this module
builds the source. Nothing is opened here: a device is opened by ``start()``, but a file is
probed at once, so a missing or unreadable file fails in `make_source` with
FileNotFoundError or `SourceError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from realtime.clock import ReplayClock, SessionClock
from realtime.sources.base import Source
from realtime.sources.browser import BrowserSource
from realtime.sources.combined import CombinedSource
from realtime.sources.devices import MicrophoneSource, WebcamSource
from realtime.sources.file import FileSource

SPEC_KINDS = ("file", "devices", "browser")


@dataclass(frozen=True)
class SourceSpec:
    """What to capture from.

    kind "file": the recording at ``path``, paced by the session clock like a live device
        (``paced``), or replayed as fast as it is read on a replay clock driven by the data
        (``paced=False``: deterministic); ``repeat_until_s``: played again and again until
        that many seconds of replay (``math.inf``: until stopped).
    kind "devices": this machine's ``camera`` (an OpenCV index or path) and/or ``mic`` (a
        sounddevice name or index, "default" for the system's); None leaves it out.
    kind "browser": frames and audio pushed in by the dashboard's page.
    """

    kind: str
    path: Path | None = None
    paced: bool = True
    camera: int | str | None = None
    mic: int | str | None = None
    repeat_until_s: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in SPEC_KINDS:
            raise ValueError(f"unknown source kind {self.kind!r}; one of {SPEC_KINDS}")
        if self.kind == "file" and self.path is None:
            raise ValueError("a file source needs a path")
        if self.kind == "devices" and self.camera is None and self.mic is None:
            raise ValueError("choose a camera, a microphone or both")
        if self.repeat_until_s is not None and not self.repeat_until_s > 0:
            raise ValueError(f"repeat_until_s must be positive, got {self.repeat_until_s}")
        if self.repeat_until_s == float("inf") and not self.paced:
            raise ValueError("an endless replay must be paced (a fast one would never end)")

    @classmethod
    def file(cls, path: str | Path, paced: bool = True,
             repeat_until_s: float | None = None) -> SourceSpec:
        return cls("file", path=Path(path), paced=paced, repeat_until_s=repeat_until_s)

    @classmethod
    def devices(cls, camera: int | str | None = 0,
                mic: int | str | None = "default") -> SourceSpec:
        return cls("devices", camera=camera, mic=mic)

    @classmethod
    def browser(cls) -> SourceSpec:
        return cls("browser")


def make_source(spec: SourceSpec) -> Source:
    """The source for ``spec`` (not started)."""
    if spec.kind == "file":
        clock = SessionClock() if spec.paced else ReplayClock()
        return FileSource(spec.path, realtime=spec.paced, clock=clock,
                          repeat_until_s=spec.repeat_until_s)
    if spec.kind == "browser":
        return BrowserSource()
    clock = SessionClock()
    parts: list[Source] = []
    if spec.camera is not None:
        parts.append(WebcamSource(spec.camera, clock))
    if spec.mic is not None:
        parts.append(MicrophoneSource(spec.mic, clock))
    return parts[0] if len(parts) == 1 else CombinedSource(*parts)
