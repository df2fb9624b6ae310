"""Privacy of the page's handlers (#25 items 2 and 5), on fake pipelines without Gradio:

* every folder the product writes to (session logs, exports, Gradio's cache with the
  microphone chunks) is listed before a person starts and after they withdraw or close
  their tab: nothing of theirs is left (a closed tab's log file stays, as documented, until
  retention);
* a page that did not start the presenter's session can neither stop it, withdraw its
  consent, delete its data nor replace its capture of a person, and its *Delete my data*
  never touches other people's exports.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from realtime.dashboard.controller import Dashboard, SourceChoice
from realtime.dashboard.mic_chunks import CHUNK_NAME, ChunkStore
from realtime.dashboard.page import PRUNE_EVERY_S, PageController, PageState
from realtime.dashboard.panels import ViewSettings
from realtime.dashboard.people import PersonalSessions
from realtime.personal.consent import ConsentTerms
from tests.helpers.fakes import FakeBrowserSource, FakePipeline, make_prediction


@dataclass
class Request:
    username: str | None = None
    session_hash: str | None = None


def _chunk(cache: Path, name: str) -> Path:
    """A 0.5 s microphone chunk as Gradio uploads it: ``<cache>/<name>/audio.wav``."""
    path = cache / name / CHUNK_NAME
    path.parent.mkdir(parents=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes((np.sin(np.arange(24000) / 9.0) * 8000).astype(np.int16).tobytes())
    return path


def _files(root: Path) -> set[str]:
    """Every file under ``root``, relative to it."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@dataclass
class Product:
    """The page on fakes, with every folder it writes to under ``root``: ``logs`` (session
    logs), ``cache`` (Gradio's cache: chunks, and the exports folder inside it)."""

    page: PageController
    root: Path
    logs: Path
    cache: Path


def _product(tmp_path: Path, per_user: bool = False) -> Product:
    root = tmp_path / "product"
    logs, cache = root / "session-logs", root / "gradio"
    cache.mkdir(parents=True)
    exports = cache / "sentiment-export-x"

    def factory(choice: SourceChoice):
        return FakePipeline(source=FakeBrowserSource() if choice.kind in ("browser", "devices")
                            else None)

    recording = tmp_path / "demo.mp4"
    recording.write_bytes(b"not played here")
    dashboard = Dashboard(FakePipeline(), SourceChoice("recording", path=recording, loop=True),
                          factory, log_dir=logs)
    people = PersonalSessions(factory, export_root=exports / "people", log_dir=logs)
    page = PageController(dashboard, people, exports / "presenter", ChunkStore(cache),
                          ConsentTerms(7, logs, per_user=per_user), recording=recording,
                          sweep_wait_s=0.0)
    return Product(page, root, logs, cache)


@pytest.fixture
def product(tmp_path):
    made = _product(tmp_path)
    yield made
    made.page.people.close_all()
    made.page.presenter.close()


def _stream_and_export(product: Product, who: Request, tag: str) -> list[Path]:
    """``who`` consents, streams (two predictions logged, one chunk handled, two left
    unhandled as under load) and exports both formats; returns the exports."""
    page = product.page
    result = page.on_start("browser", None, 0, "", False, True, who)
    assert "only you see it" in result.message
    dashboard = page.views.view(who)[0]
    for t_s in (0.5, 1.0):
        dashboard.pipeline.store.publish(make_prediction(t_s, 1.0, words=(f"{tag}-words",)))
    page.on_audio(str(_chunk(product.cache, f"{tag}-handled")), who)
    _chunk(product.cache, f"{tag}-lost-1")
    _chunk(product.cache, f"{tag}-lost-2")
    exports = [page.on_export("csv", who), page.on_export("jsonl", who)]
    assert all(f"{tag}-words" in p.read_text() for p in exports)
    assert any(p.is_relative_to(product.logs) for p in product.root.rglob("*.jsonl"))
    return exports


def test_withdraw_leaves_nothing_of_the_person_in_any_folder(product):
    # defect (#25): exports and unhandled voice chunks stayed after Withdraw consent
    before = _files(product.root)
    ann = Request(session_hash="ann-tab")
    exports = _stream_and_export(product, ann, "ann")
    assert _files(product.root) - before  # the log, exports and chunks exist meanwhile
    message = product.page.on_withdraw(ann)
    assert message.startswith("Consent withdrawn")
    assert _files(product.root) == before, _files(product.root) - before
    assert not any(p.exists() for p in exports)


def test_a_closed_tab_leaves_nothing_of_its_person(product):
    # defect (#25): a closed tab's exports and unhandled chunks stayed; without a login the
    # tab was the session's only credential, so its log goes too
    before = _files(product.root)
    bob = Request(session_hash="bob-tab")
    _stream_and_export(product, bob, "bob")
    assert any(p.startswith("session-logs/") for p in _files(product.root) - before)
    product.page.on_unload(bob)
    assert product.page.people.get("tab:bob-tab") is None  # its session is stopped
    assert _files(product.root) == before, _files(product.root) - before


def test_one_withdraws_another_closes_their_tab_a_third_keeps_streaming(product):
    # the review's case: two people streaming; what the third (still streaming) had in
    # flight at the second sweep is spared
    page = product.page
    ann, bob, cat = (Request(session_hash=h) for h in ("ann", "bob", "cat"))
    before = _files(product.root)
    _stream_and_export(product, ann, "ann")
    _stream_and_export(product, bob, "bob")
    page.on_start("browser", None, 0, "", False, True, cat)
    page.on_withdraw(ann)
    page.on_unload(bob)
    cat_chunk = _chunk(product.cache, "cat-in-flight")  # arrives after both sweeps
    left = _files(product.root) - before
    cats_log = {p for p in left if p.startswith("session-logs/")}
    assert len(cats_log) == 1  # the third person's own log, still being written
    assert left == {str(cat_chunk.relative_to(product.root))} | cats_log
    assert not any("ann" in p or "bob" in p for p in left if "session-logs" not in p)
    assert page.people.get("tab:cat") is not None


def test_the_tick_sweeps_chunks_no_page_ever_handed_over(product, monkeypatch):
    page = product.page
    lost = _chunk(product.cache, "lost")
    now_s = [100.0]
    monkeypatch.setattr("realtime.dashboard.page.perf_s", lambda: now_s[0])
    page.on_tick(PageState(), ViewSettings(), None)  # first sweep: may still be handled
    now_s[0] += PRUNE_EVERY_S / 2
    page.on_tick(PageState(), ViewSettings(), None)  # no sweep yet
    assert lost.exists()
    now_s[0] += PRUNE_EVERY_S / 2
    page.on_tick(PageState(), ViewSettings(), None)
    assert not lost.exists() and not lost.parent.exists()


# -- item 5: whose session a page may act on -----------------------------------------------
def test_delete_from_a_page_without_a_session_keeps_other_peoples_exports(product):
    # defect (#25): it removed the whole export folder, people/<id>/ included
    page = product.page
    ann = Request(session_hash="ann")
    ann_export = _stream_and_export(product, ann, "ann")[0]
    page.presenter.start_session()  # the server's own session (the recording)
    presenter_export = page.on_export("csv", None)
    message = page.on_delete(Request(session_hash="visitor"))
    assert message.startswith("**Not your session:**") and "Nothing changed" in message
    assert ann_export.exists() and presenter_export.exists()
    assert not presenter_export.is_relative_to(page.people.export_root)
    assert not page.people.export_root.is_relative_to(page.views.presenter_exports)


def test_the_presenters_exports_never_hold_the_visitors(tmp_path):
    people = PersonalSessions(lambda c: FakePipeline(), export_root=tmp_path / "x" / "people")
    with pytest.raises(ValueError, match="must not hold the visitors'"):
        PageController(Dashboard(FakePipeline()), people, tmp_path / "x",
                       ChunkStore(tmp_path / "cache"))


def test_only_the_page_that_started_the_presenters_session_stops_it(product, tmp_path):
    page = product.page
    talk = tmp_path / "talk.mp4"
    talk.write_bytes(b"x")
    owner, visitor = Request(session_hash="owner"), Request(session_hash="visitor")
    page.on_start("file", str(talk), 0, "", False, False, owner)
    for act in (page.on_stop, page.on_withdraw, page.on_delete):
        message = act(visitor)
        assert "Not your session" in message or "No capture of a person" in message, message
        assert page.presenter.session_active
    for act in (page.on_stop, page.on_delete):
        assert "Not your session" in act(None)  # a request that names no page
    assert page.on_stop(owner).startswith("Session stopped")


def test_a_visitor_cannot_withdraw_delete_or_replace_a_presenter_capture(product):
    page = product.page
    owner, visitor = Request(session_hash="owner"), Request(session_hash="visitor")
    page.on_start("devices", None, 0, "", False, True, owner)  # this machine's camera
    page.presenter.pipeline.store.publish(make_prediction(0.5, 1.0))
    page.presenter.sync()
    export = page.on_export("csv", owner)
    log_file = page.presenter.log.path
    assert page.presenter.consent is not None and log_file.exists()
    assert "Not your session" in page.on_withdraw(visitor)
    assert "Not your session" in page.on_delete(visitor)
    refused = page.on_start("recording", None, 0, "", True, False, visitor)
    assert "Not your session" in refused.message and refused.player is None
    assert page.presenter.session_active and page.presenter.consent is not None
    assert len(page.presenter.log) == 1 and log_file.exists() and export.exists()
    assert page.on_withdraw(owner).startswith("Consent withdrawn")
    assert not log_file.exists() and not export.exists()


def test_the_presenters_capture_stops_when_its_tab_closes(product):
    page = product.page
    owner = Request(session_hash="owner")
    page.on_start("devices", None, 0, "", False, True, owner)
    export = page.on_export("jsonl", owner)
    page.on_unload(Request(session_hash="someone-else"))
    assert page.presenter.session_active
    page.on_unload(owner)
    assert not page.presenter.session_active and not export.exists()
    assert "Not your session" in page.on_stop(owner)  # that tab is gone for good


def test_with_logins_the_owner_is_the_login_not_the_tab(tmp_path):
    made = _product(tmp_path, per_user=True)
    page = made.page
    talk = tmp_path / "talk.mp4"
    talk.write_bytes(b"x")
    try:
        page.on_start("file", str(talk), 0, "", False, False,
                      Request(username="ann", session_hash="tab-1"))
        assert "Not your session" in page.on_stop(Request(username="bob", session_hash="tab-1"))
        assert page.on_stop(Request(username="ann", session_hash="tab-2")).startswith(
            "Session stopped")
    finally:
        page.people.close_all()
        page.presenter.close()
