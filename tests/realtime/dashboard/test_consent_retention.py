"""The consent gate, the consented session log on disk, withdrawal, "Delete my data",
retention, and per-person sessions (isolation, limit, idle reaping, operator health)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from realtime.dashboard.controller import Dashboard, SourceChoice
from realtime.dashboard.people import PersonalSessions
from realtime.dashboard.session_log import SessionLog
from realtime.personal.consent import (
    CONSENT_VERSION,
    ConsentTerms,
    consent_record,
    consent_text,
    needs_consent,
)
from realtime.personal.retention import (
    DAY_S,
    RetentionJob,
    RetentionRule,
    personal_data_rules,
    purge,
)
from realtime.personal.storage import CALIBRATION_DIR, SESSION_LOG_DIR
from realtime.serving.sessions import SessionRefused
from tests.helpers.fakes import FakeBrowserSource, FakePipeline, make_prediction

TERMS = ConsentTerms(retention_days=7, log_dir=None)
AGREED = consent_record(consent_text(TERMS), "2026-12-02T10:00:00")
BROWSER = SourceChoice("browser")


def test_the_notice_says_what_is_processed_kept_where_and_for_how_long(tmp_path):
    text = consent_text(ConsentTerms(retention_days=7, log_dir=tmp_path, per_user=True))
    for needle in ("camera image", "voice", "words", "No video and no audio", str(tmp_path),
                   "7 days", "Withdraw consent", "Delete my data", "Art. 5(1)(f)",
                   "not a medical device", "operator page", CONSENT_VERSION):
        assert needle in text, needle
    assert "memory only" in consent_text(ConsentTerms(retention_days=7, log_dir=None))
    record = consent_record(text, "2026-12-02T10:00:00")
    assert record.version == CONSENT_VERSION and len(record.text_sha256) == 64
    assert record.text_sha256 != consent_record(text + " ", "x").text_sha256
    assert needs_consent("browser") and needs_consent("devices")
    assert not needs_consent("recording") and not needs_consent("file")


def test_capture_of_a_person_needs_consent_and_the_log_records_it(tmp_path):
    built: list[FakePipeline] = []

    def factory(choice):
        built.append(FakePipeline(FakeBrowserSource()))
        return built[-1]

    first = FakePipeline()
    dash = Dashboard(first, SourceChoice("recording", path=__file__), factory,
                     sync_interval_s=0.01, log_dir=tmp_path / "logs")
    dash.start_session()
    assert dash.log.consent is None and dash.log.path is None  # a recording: nothing on disk
    with pytest.raises(PermissionError, match="agree to the consent notice first"):
        dash.start_session(BROWSER)
    assert dash.pipeline is first and not built  # nothing was opened
    dash.start_session(BROWSER, AGREED)
    path = dash.log.path
    assert path is not None and path.parent == tmp_path / "logs"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    built[-1].store.publish(make_prediction(0.2, 1.5))
    dash.sync()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0]["type"] == "session"
    assert lines[0]["consent"] == {"given_at": "2026-12-02T10:00:00",
                                   "version": CONSENT_VERSION,
                                   "text_sha256": AGREED.text_sha256}
    assert [x["sentiment"] for x in lines[1:]] == [1.5]
    assert json.loads(dash.log.to_jsonl().splitlines()[0])["consent"]["version"] == CONSENT_VERSION
    dash.start_session()  # a restart of the same source keeps the same agreement
    assert dash.consent == AGREED
    dash.close()


def test_withdrawing_stops_capture_and_deletes_the_sessions_data(tmp_path):
    pipe = FakePipeline(FakeBrowserSource())
    dash = Dashboard(pipe, BROWSER, lambda c: FakePipeline(FakeBrowserSource()),
                     sync_interval_s=0.01, log_dir=tmp_path)
    dash.start_session(consent=AGREED)
    pipe.store.publish(make_prediction(0.2, -1.0))
    dash.sync()
    path = dash.log.path
    assert path.exists() and len(dash.log) == 1
    message = dash.withdraw()
    assert "Consent withdrawn" in message and path.name in message
    assert not path.exists() and len(dash.log) == 0 and dash.log.transcript() == []
    assert not pipe.running and not dash.session_active and dash.consent is None
    with pytest.raises(PermissionError):
        dash.start_session()  # capture again only after agreeing again


def test_delete_my_data_erases_now_and_the_session_goes_on_empty(tmp_path):
    pipe = FakePipeline(FakeBrowserSource())
    dash = Dashboard(pipe, BROWSER, None, sync_interval_s=0.01, log_dir=tmp_path)
    dash.start_session(consent=AGREED)
    pipe.store.publish(make_prediction(0.2, 2.0))
    dash.sync()
    old = dash.log.path
    assert "deleted" in dash.delete_data()
    assert not old.exists() and len(dash.log) == 0
    assert dash.session_active and pipe.running
    pipe.store.publish(make_prediction(0.4, -2.0))
    dash.sync()
    new = dash.log.path
    assert new != old and new.exists()
    rows = [json.loads(x) for x in new.read_text().splitlines()[1:]]
    assert [r["sentiment"] for r in rows] == [-2.0]  # nothing from before the deletion
    dash.close()


def test_session_log_erase_without_a_file_empties_it():
    log = SessionLog()
    log.append(make_prediction(0.2, 1.0))
    assert log.erase() is None and len(log) == 0


def test_retention_deletes_only_old_logs_and_calibration_sessions(tmp_path):
    logs, calib = tmp_path / "session-logs", tmp_path / "calibration"
    logs.mkdir()
    calib.mkdir()
    now_s = 2_000_000_000.0
    files = {
        logs / "old.jsonl": 8, logs / "new.jsonl": 6, logs / "old.txt": 30,
        calib / "session-old.npz": 10, calib / "personal-old": 30, calib / "session-new.npz": 1,
    }
    for path, age_days in files.items():
        path.write_text("x")
        os.utime(path, (now_s - age_days * DAY_S, now_s - age_days * DAY_S))
    rules = [RetentionRule(logs, "*.jsonl"), RetentionRule(calib, "session-*.npz"),
             RetentionRule(tmp_path / "missing", "*.jsonl")]
    gone = purge(rules, 7, now_s)
    assert sorted(p.name for p in gone) == ["old.jsonl", "session-old.npz"]
    assert sorted(p.name for p in logs.iterdir()) == ["new.jsonl", "old.txt"]
    assert sorted(p.name for p in calib.iterdir()) == ["personal-old", "session-new.npz"]
    with pytest.raises(ValueError, match="days must be >= 0"):
        purge(rules, -1, now_s)


def test_the_retention_job_purges_at_start_and_then_every_period(tmp_path):
    (tmp_path / "a.jsonl").write_text("x")
    os.utime(tmp_path / "a.jsonl", (0, 0))
    now = [1_000.0 * DAY_S]
    job = RetentionJob([RetentionRule(tmp_path, "*.jsonl")], days=7, every_s=0.05,
                       now_s=lambda: now[0])
    job.start()
    try:
        assert job.deleted == 1 and not (tmp_path / "a.jsonl").exists()  # at start
        (tmp_path / "b.jsonl").write_text("x")
        os.utime(tmp_path / "b.jsonl", (now[0], now[0]))
        now[0] += 8 * DAY_S  # a week and a day later
        for _ in range(100):
            if not (tmp_path / "b.jsonl").exists():
                break
            job._stop.wait(0.02)
        assert not (tmp_path / "b.jsonl").exists() and job.deleted == 2
    finally:
        assert job.stop()


def test_zero_retention_days_keeps_the_calibration_sessions_a_person_saved(tmp_path):
    """--retention-days 0: no session log is kept (one left by an earlier run goes at start),
    but a calibration session saved a minute before the restart stays until it is deleted by
    hand; personal models are never retention's."""
    now_s = 2_000_000_000.0
    saved = tmp_path / CALIBRATION_DIR / "session-2033-05-18T03-32-20.npz"
    model = tmp_path / CALIBRATION_DIR / "personal-2033-05-18T03-32-20"
    old_log = tmp_path / SESSION_LOG_DIR / "session-2033-05-18T03-00-00-1a2b3c4d.jsonl"
    model.mkdir(parents=True)
    old_log.parent.mkdir()
    for path, age_s in ((saved, 60.0), (old_log, 60.0), (saved.with_name("session-a.npz"),
                                                          400 * DAY_S)):
        path.write_text("x")
        os.utime(path, (now_s - age_s, now_s - age_s))
    job = RetentionJob(personal_data_rules(tmp_path), days=0, now_s=lambda: now_s)
    assert job.run_once() == [old_log]
    assert sorted(p.name for p in saved.parent.iterdir()) == sorted(
        [saved.name, "session-a.npz", model.name])
    # with days > 0 the saved sessions follow the same rule as the logs
    assert purge(personal_data_rules(tmp_path), 7, now_s) == [saved.with_name("session-a.npz")]


def test_the_consent_text_for_zero_days_says_saved_calibrations_stay():
    text = consent_text(ConsentTerms(retention_days=0, log_dir=None))
    assert "memory only" in text
    assert "calibration recordings you choose to save" in text
    assert "until they are deleted by hand" in text
    assert "until they are deleted by hand" not in consent_text(TERMS)  # 7 days


def _people(tmp_path, **kw) -> tuple[PersonalSessions, list[FakePipeline]]:
    built: list[FakePipeline] = []

    def factory(choice):
        built.append(FakePipeline(FakeBrowserSource()))
        return built[-1]

    return PersonalSessions(factory, export_root=tmp_path / "exports",
                            log_dir=tmp_path / "logs", **kw), built


def test_each_person_sees_only_their_own_session(tmp_path):
    people, built = _people(tmp_path)
    a = people.open("tab-a", BROWSER, AGREED)
    b = people.open("tab-b", BROWSER, AGREED)
    assert a.id != b.id and a.dashboard is not b.dashboard
    a.dashboard.push_frame("frame of a")
    built[0].store.publish(make_prediction(0.2, 2.0, words=("alice",), new_words=("alice",)))
    built[1].store.publish(make_prediction(0.2, -2.0, words=("bob",), new_words=("bob",)))
    a.dashboard.sync()
    b.dashboard.sync()
    assert a.dashboard.log.transcript() == ["alice"] and b.dashboard.log.transcript() == ["bob"]
    assert built[0].source.frames == ["frame of a"] and built[1].source.frames == []
    assert a.dashboard.log.path != b.dashboard.log.path
    assert people.get("tab-a") is a and people.get("tab-c") is None
    # the operator's view: ids, kinds and health; no sentiment, words or owners
    health = people.health()
    assert {h.id for h in health} == {a.id, b.id}
    text = repr(health)
    assert "alice" not in text and "bob" not in text and "tab-a" not in text
    # withdrawing is per person
    people.withdraw("tab-a")
    assert people.get("tab-a") is None and not a.dashboard.log.path
    assert people.get("tab-b") is b and built[1].running
    people.close_all()
    assert not built[1].running and len(people) == 0


def test_past_max_sessions_a_new_person_is_refused_and_an_owner_replaces_their_own(tmp_path):
    people, built = _people(tmp_path, max_sessions=2)
    people.open("a", BROWSER, AGREED)
    people.open("b", BROWSER, AGREED)
    with pytest.raises(SessionRefused, match=r"2 personal sessions .*--max-sessions 2"):
        people.open("c", BROWSER, AGREED)
    assert len(built) == 2  # nothing was opened for c
    again = people.open("a", BROWSER, AGREED)  # a's own session is replaced, not refused
    assert people.get("a") is again and not built[0].running and built[2].running
    people.close_all()


def test_an_idle_personal_session_is_reaped_and_a_live_one_kept(tmp_path):
    people, built = _people(tmp_path, idle_timeout_s=30.0)
    quiet = people.open("quiet", BROWSER, AGREED)
    busy = people.open("busy", BROWSER, AGREED)
    for session in (quiet, busy):  # each exported its log once
        session.export_dir.mkdir(parents=True)
        (session.export_dir / "log.csv").write_text("t,sentiment\n")
    for p in built:
        p.clock.advance_to(40.0)
    built[1].last_input_s = 35.0
    assert people.reap_idle() == [quiet.id]
    assert people.get("quiet") is None and not built[0].running
    assert quiet.dashboard.log.path.exists()  # kept until retention deletes it
    assert not quiet.export_dir.exists()  # no page can reach a stopped session's exports
    assert (busy.export_dir / "log.csv").exists()
    assert people.get("busy") is busy and people.reaped == 1
    people.close_all()


def test_a_source_that_cannot_start_leaves_no_personal_session(tmp_path):
    people = PersonalSessions(lambda c: FakePipeline(start_error="no camera"),
                              export_root=tmp_path)
    with pytest.raises(RuntimeError, match="no camera"):
        people.open("a", BROWSER, AGREED)
    assert len(people) == 0 and people.get("a") is None


def test_a_page_sees_its_own_session_else_the_presenters(tmp_path):
    from types import SimpleNamespace

    from realtime.dashboard.people import PageViews

    people, built = _people(tmp_path)
    presenter = Dashboard(FakePipeline(), SourceChoice("recording", path=__file__))
    tab = PageViews(presenter, tmp_path / "shared", people)
    logins = PageViews(presenter, tmp_path / "shared", people, per_user=True)
    alice_tab1 = SimpleNamespace(username="alice", session_hash="t1")
    alice_tab2 = SimpleNamespace(username="alice", session_hash="t2")
    bob = SimpleNamespace(username="bob", session_hash="t3")
    assert tab.owner(alice_tab1) == "tab:t1" and logins.owner(alice_tab1) == "user:alice"
    assert logins.owner(SimpleNamespace(username=None, session_hash="t9")) is None
    assert tab.owner(None) is None and tab.view(None) == (presenter, tmp_path / "shared")
    # without logins, each tab is its own person
    mine = people.open(tab.owner(alice_tab1), BROWSER, AGREED)
    assert tab.view(alice_tab1) == (mine.dashboard, mine.export_dir)
    assert tab.view(alice_tab2)[0] is presenter and tab.view(bob)[0] is presenter
    # with logins, a user's tabs share their session and nobody else reaches it
    hers = people.open(logins.owner(alice_tab2), BROWSER, AGREED)
    assert logins.view(alice_tab1)[0] is hers.dashboard is logins.view(alice_tab2)[0]
    assert logins.view(bob)[0] is presenter
    assert mine.export_dir != hers.export_dir and hers.export_dir.parent == tmp_path / "exports"
    people.close_all()


def test_visitors_and_other_sessions_share_one_registry_and_its_limit(tmp_path, monkeypatch):
    from realtime import heap
    from realtime.serving.sessions import PipelineSession, SessionManager

    trims = []
    monkeypatch.setattr(heap, "trim_heap", lambda: trims.append(1) or True)
    registry = SessionManager(max_sessions=2, idle_timeout_s=30.0)
    people, built = _people(tmp_path, registry=registry)
    other = registry.open(lambda: PipelineSession(FakePipeline()), "file")  # a command's
    mine = people.open("a", BROWSER, AGREED)
    assert set(registry.ids()) == {other, mine.id}
    with pytest.raises(SessionRefused, match="2 sessions are running"):
        people.open("b", BROWSER, AGREED)
    built[0].error = "/home/op/uploads/Jane Doe.webm: decoding stopped part-way"
    [health] = people.health()  # only the visitors' own, scrubbed
    assert health.id == mine.id and health.error == "<file>: decoding stopped part-way"
    people.close("a")
    assert registry.ids() == [other] and trims == [1]  # memory handed back on stop
    registry.stop_all()
