"""realtime.sources.make_source: the one source factory, and the two callers' requests
(the command line's arguments, the dashboard's choice)."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime.__main__ import parse_args, source_specs
from realtime.clock import ReplayClock, SessionClock
from realtime.dashboard.controller import SourceChoice
from realtime.dashboard.controller import source_spec as dashboard_spec
from realtime.sources import (
    BrowserSource,
    CombinedSource,
    FileSource,
    MicrophoneSource,
    SourceError,
    SourceSpec,
    WebcamSource,
    make_source,
)
from tests.helpers import REPO

DEMO = REPO / "assets" / "demo.mp4"


def test_a_file_is_paced_by_the_session_clock_or_replayed_fast_on_a_replay_clock():
    paced = make_source(SourceSpec.file(DEMO))
    assert isinstance(paced, FileSource) and paced.realtime
    assert isinstance(paced.clock, SessionClock)
    fast = make_source(SourceSpec.file(DEMO, paced=False))
    assert isinstance(fast, FileSource) and not fast.realtime
    assert isinstance(fast.clock, ReplayClock)


def test_bad_files_fail_when_the_source_is_made(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        make_source(SourceSpec.file(tmp_path / "missing.mp4"))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="empty"):
        make_source(SourceSpec.file(empty))


def test_devices_make_one_source_per_device_on_one_clock():
    camera = make_source(SourceSpec.devices(camera=2, mic=None))
    assert isinstance(camera, WebcamSource) and camera.device == 2
    mic = make_source(SourceSpec.devices(camera=None, mic="default"))
    assert isinstance(mic, MicrophoneSource) and mic.device is None
    both = make_source(SourceSpec.devices())
    assert isinstance(both, CombinedSource) and both.has_audio and both.has_video
    assert len({id(p.clock) for p in both.parts}) == 1
    assert isinstance(make_source(SourceSpec.browser()), BrowserSource)


def test_bad_requests_are_clear_errors():
    with pytest.raises(ValueError, match="choose a camera, a microphone or both"):
        SourceSpec.devices(camera=None, mic=None)
    with pytest.raises(ValueError, match="unknown source kind 'tape'"):
        SourceSpec("tape")
    with pytest.raises(ValueError, match="needs a path"):
        SourceSpec("file")


@pytest.mark.parametrize("argv, spec", [
    (["--source", "a.mp4"], SourceSpec.file("a.mp4", paced=True)),
    (["--source", "a.mp4", "--fast"], SourceSpec.file("a.mp4", paced=False)),
    (["--camera", "1"], SourceSpec.devices(camera=1, mic=None)),
    (["--camera", "/dev/video2", "--mic", "none"], SourceSpec.devices("/dev/video2", None)),
    (["--mic", "default"], SourceSpec.devices(camera=None, mic="default")),
    (["--camera", "off", "--mic", "USB"], SourceSpec.devices(camera=None, mic="USB")),
])
def test_command_line_requests(argv, spec):
    [(_, got)] = source_specs(parse_args(argv))
    assert got == spec


def test_command_line_without_any_device_is_the_factory_error():
    with pytest.raises(ValueError, match="choose a camera, a microphone or both"):
        source_specs(parse_args(["--camera", "none", "--mic", "none"]))


@pytest.mark.parametrize("choice, spec", [
    (SourceChoice("recording", path=DEMO), SourceSpec.file(DEMO, paced=True)),
    (SourceChoice("file", path=DEMO, loop=True), SourceSpec.file(DEMO, paced=True)),
    (SourceChoice("browser"), SourceSpec.browser()),
    (SourceChoice("devices"), SourceSpec.devices(camera=0, mic="default")),
    (SourceChoice("devices", camera=3, mic="USB"), SourceSpec.devices(camera=3, mic="USB")),
])
def test_dashboard_requests(choice, spec):
    assert dashboard_spec(choice) == spec


def test_several_sources_are_sessions_named_by_file():
    args = parse_args(["--source", "a/talk.mp4", "--source", "b/talk.mp4", "--source",
                       "c.wav", "--camera", "0", "--mic", "none"])
    assert [name for name, _ in source_specs(args)] == ["talk", "talk-2", "c", "devices"]
    assert source_specs(args)[2][1] == SourceSpec.file(Path("c.wav"), paced=True)
