"""The page's handlers (`PageController`) on fake pipelines, without Gradio: consent routing,
whose session a page shows, withdrawal and deletion, exports, the browser's input, the
refresh tick and the operator table; and that the module never imports Gradio."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from realtime.dashboard.controller import Dashboard, SourceChoice
from realtime.dashboard.mic_chunks import ChunkStore
from realtime.dashboard.page import (
    FAST_TICK_S,
    SLOW_TICK_S,
    PageController,
    PageState,
    PlayerView,
    one_line,
)
from realtime.dashboard.panels import FAST_PANELS, SLOW_PANELS, ViewSettings
from realtime.dashboard.people import PersonalSessions
from realtime.personal.consent import ConsentTerms
from tests.helpers import REPO
from tests.helpers.fakes import FakeBrowserSource, FakePipeline, make_prediction

BANNER = ("Decoding failed. ffmpeg returned error code: 1\n\nOutput from ffmpeg/avlib:\n\n"
          "ffmpeg version 5.1.9 Copyright (c) 2000-2026 the FFmpeg developers\n"
          "  built with gcc 12\n  configuration: --prefix=/usr --enable-gpl\n")


@dataclass
class Request:
    """What the controller reads of a page's request."""

    username: str | None = None
    session_hash: str | None = None


class WithVideo(FakePipeline):
    def __init__(self) -> None:
        super().__init__()
        self.source.has_video = True


@pytest.fixture
def page(tmp_path):
    presenter_builds: list[FakePipeline] = []

    def presenter_factory(choice: SourceChoice):
        presenter_builds.append(WithVideo())
        return presenter_builds[-1]

    def personal_factory(choice: SourceChoice):
        return FakePipeline(source=FakeBrowserSource())

    recording = tmp_path / "demo.mp4"
    recording.write_bytes(b"not played here")
    dashboard = Dashboard(FakePipeline(), SourceChoice("recording", path=recording, loop=True),
                          presenter_factory)
    people = PersonalSessions(personal_factory, export_root=tmp_path / "exports" / "people")
    (tmp_path / "uploads").mkdir()
    controller = PageController(dashboard, people, tmp_path / "exports" / "presenter",
                                ChunkStore(tmp_path / "uploads"),
                                ConsentTerms(7, None), recording=recording, sweep_wait_s=0.0)
    yield controller
    people.close_all()
    dashboard.close()


def test_the_page_module_does_not_import_gradio():
    code = ("import sys, realtime.dashboard.page; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'gradio'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr


def test_setup_offers_the_recording_and_the_consent_notice(page, tmp_path):
    setup = page.setup()
    assert setup.kind == "recording" and setup.player_path == tmp_path / "demo.mp4"
    assert [k for _, k in setup.kinds] == ["recording", "file", "devices", "browser"]
    assert setup.loop and setup.camera == 0 and setup.mic == ""
    assert setup.notice.startswith("**Before we start (consent")
    fields = page.on_source("devices")
    assert (fields.upload, fields.devices, fields.loop, fields.consent) == (False, True,
                                                                             False, True)
    fields = page.on_source("file")
    assert (fields.upload, fields.devices, fields.loop, fields.consent) == (True, False,
                                                                             True, False)


def test_capture_of_a_person_waits_for_consent(page):
    result = page.on_start("browser", None, 0, "", False, False, Request(session_hash="t1"))
    assert result.message.startswith("**Consent first:**")
    assert result.player is None and result.browser_box is None  # nothing else changes
    assert len(page.people) == 0


def test_a_browser_session_is_the_pages_own(page):
    mine = Request(session_hash="t1")
    result = page.on_start("browser", None, 0, "", False, True, mine)
    assert "only you see it" in result.message and "browser's webcam" in result.message
    assert result.player == PlayerView(None) and result.browser_box is True
    own = page.people.get("tab:t1")
    assert own is not None and own.dashboard.consent is not None
    # its frames and chunks reach only its own session; another tab's are dropped
    frame = np.zeros((4, 4, 3), np.uint8)
    page.on_frame(frame, mine)
    page.on_frame(frame, Request(session_hash="t2"))
    assert len(own.dashboard.pipeline.source.frames) == 1
    assert page.views.view(Request(session_hash="t2"))[0] is page.presenter
    assert page.on_stop(mine) != "" and not own.dashboard.session_active
    page.on_unload(mine)  # a closed tab ends its session
    assert page.people.get("tab:t1") is None


def test_a_page_without_an_owner_cannot_hold_a_session(page):
    result = page.on_start("browser", None, 0, "", False, True, Request())
    assert result.message.startswith("**Could not start:** RuntimeError: this page cannot")
    assert result.player is None and result.browser_box is None


def test_a_presenter_source_plays_in_the_shared_view(page, tmp_path):
    talk = tmp_path / "talk.mp4"
    talk.write_bytes(b"x")
    result = page.on_start("file", str(talk), 0, "", True, False, Request(session_hash="t1"))
    assert page.presenter.choice == SourceChoice("file", path=talk, camera=0, loop=True)
    assert result.player == PlayerView(talk) and result.player.visible
    assert result.browser_box is False


def test_a_start_that_fails_says_one_line(page, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError(BANNER)

    monkeypatch.setattr(page.presenter, "start_session", fail)
    result = page.on_start("recording", None, 0, "", True, False, None)
    assert result.message == ("**Could not start:** RuntimeError: Decoding failed. ffmpeg "
                              "returned error code: 1")


def test_withdraw_and_delete_act_on_the_pages_own_session_else_the_presenters(page):
    mine = Request(session_hash="t1")
    assert "nothing personal is kept" in page.on_withdraw(mine)
    page.on_start("browser", None, 0, "", False, True, mine)
    exported = page.on_export("csv", mine)
    assert exported.is_relative_to(page.people.get("tab:t1").export_dir)
    assert page.on_delete(mine) != "" and not exported.exists()
    page.on_withdraw(mine)
    assert page.people.get("tab:t1") is None
    page.on_start("recording", None, 0, "", True, False, mine)  # this page's presenter view
    presenter_export = page.on_export("jsonl", None)
    assert presenter_export.parent == page.views.presenter_exports
    assert "Not your session" in page.on_delete(None) and presenter_export.exists()
    page.on_delete(mine)
    assert not presenter_export.exists()


def test_a_chunk_that_is_not_audio_is_refused_in_one_line(page, tmp_path):
    # defect (#25): the error reply carried FFmpeg's whole build banner
    chunk = tmp_path / "uploads" / "c1" / "audio.wav"
    chunk.parent.mkdir()
    chunk.write_bytes(np.random.default_rng(0).bytes(4000))
    page.on_audio(str(chunk), Request(session_hash="t1"))  # refused, never raised
    assert page.chunks.refused == 1 and page.chunks.dropped == 1
    message = page.chunks.last_refusal
    assert "\n" not in message and "configuration" not in message and message
    assert not chunk.exists()  # deleted all the same
    page.on_audio(None, Request(session_hash="t1"))  # a stream's empty payload: nothing


def test_one_line_keeps_the_first_line_only():
    assert one_line(RuntimeError(BANNER)) == "Decoding failed. ffmpeg returned error code: 1"
    assert one_line(RuntimeError("\n\n  second\nthird")) == "second"
    assert one_line(ValueError("")) == "ValueError"


def test_the_tick_sends_every_panel_and_frees_closed_pages_now_and_then(page):
    page.presenter.start_session()
    page.presenter.pipeline.store.publish(make_prediction(0.2, 1.5))
    page.presenter.sync()
    state = PageState()
    freed = []
    out = page.on_tick(state, ViewSettings(), None, lambda: freed.append(1))
    assert len(out) == len(FAST_PANELS) + len(SLOW_PANELS)
    assert 'data-value="+1.50"' in out[0] and all(out)  # the slow panels drawn at once
    page.on_tick(state, ViewSettings(), None, lambda: freed.append(1))
    assert freed == [1]  # once per PRUNE_EVERY_S, not every tick
    assert FAST_TICK_S < SLOW_TICK_S


def test_the_operator_table_shows_health_not_content(page):
    page.on_start("browser", None, 0, "", False, True, Request(session_hash="t1"))
    html = page.operator_html()
    assert "presenter" in html and page.people.get("tab:t1").id in html
    assert "hello" not in html  # no words


def test_exports_of_an_unknown_format_are_refused(page):
    with pytest.raises(ValueError, match="csv or jsonl"):
        page.on_export("mp4", None)
    assert isinstance(page.on_export("csv", None), Path)
