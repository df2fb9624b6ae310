"""Capture sources behind one interface (`Source`): start(), stop(timeout_s=2.0),
read_audio(), read_frames(), finished, ended, error, drops, name, has_audio, has_video;
built by `make_source(SourceSpec)`.

The contract (see `Source`): audio is always 16 kHz mono float32 `AudioChunk`s in [-1, 1]
(`realtime.sources.audio`); video is RGB uint8 `VideoFrame`s, at most 640 px wide
(`realtime.sources.image`). Every item is stamped at capture with the session clock.
"""

from realtime.sources.base import DropQueue, Source, SourceError
from realtime.sources.browser import BrowserSource
from realtime.sources.combined import CombinedSource
from realtime.sources.devices import MicrophoneSource, WebcamSource
from realtime.sources.factory import SourceSpec, make_source
from realtime.sources.file import FileSource

__all__ = [
    "BrowserSource",
    "CombinedSource",
    "DropQueue",
    "FileSource",
    "MicrophoneSource",
    "Source",
    "SourceError",
    "SourceSpec",
    "WebcamSource",
    "make_source",
]
