"""The command line's outputs (issue #25, defects 7 and 11): every session gets its own
--jsonl-dir file, whatever its sources are called; an output that cannot be written fails at
once with one line and exit 2, before any model loads; the folder's sessions.json lists every
session, a failed one with its error (issue #23)."""

from __future__ import annotations

import json
import shutil
import threading

import pytest
import torch

import realtime.engine
from realtime.__main__ import parse_args, source_specs, unique_names
from tests.helpers import media
from tests.realtime.test_cli import run_main
from tests.realtime.test_pipeline import MeanModel, fake_engine


@pytest.fixture
def loads(monkeypatch) -> list[int]:
    """Engine.load replaced by the stand-in engine; counts its calls."""
    calls: list[int] = []

    def load(cls, *a, **k):
        calls.append(1)
        return fake_engine()

    monkeypatch.setattr(realtime.engine.Engine, "load", classmethod(load))
    return calls


@pytest.mark.parametrize("names, expect", [
    (["talk", "talk", "talk-2"], ["talk", "talk-3", "talk-2"]),
    (["talk-2", "talk", "talk"], ["talk-2", "talk", "talk-3"]),
    (["a", "a", "a", "a-2", "a-3"], ["a", "a-4", "a-5", "a-2", "a-3"]),
    (["Talk", "talk"], ["Talk", "talk-2"]),
    (["devices", "devices"], ["devices", "devices-2"]),
    (["x", "y"], ["x", "y"]),
])
def test_session_names_are_unique_against_every_name(names, expect):
    assert unique_names(names) == expect


def test_a_file_called_like_a_renamed_repeat_gets_its_own_session(tmp_path, loads):
    wav = media.speech_wav(tmp_path, "hello there, how are you")
    talk, talk2 = tmp_path / "talk.wav", tmp_path / "talk-2.wav"
    shutil.copy(wav, talk)
    shutil.copy(wav, talk2)
    args = ["--source", str(talk), "--source", str(talk), "--source", str(talk2), "--fast",
            "--quiet"]
    names = [name for name, _ in source_specs(parse_args(args))]
    assert sorted(names) == ["talk", "talk-2", "talk-3"]
    code, _, err = run_main(*args, "--jsonl-dir", str(tmp_path / "out"))
    assert code == 0, err
    alone_code, _, _ = run_main("--source", str(talk), "--fast", "--quiet", "--jsonl",
                                str(tmp_path / "alone.jsonl"))
    alone = (tmp_path / "alone.jsonl").read_text().splitlines()
    assert alone_code == 0 and alone
    files = sorted(p.name for p in (tmp_path / "out").glob("*.jsonl"))
    assert files == ["talk-2.jsonl", "talk-3.jsonl", "talk.jsonl"]
    for name in files:
        lines = (tmp_path / "out" / name).read_text().splitlines()
        assert len(lines) == len(alone), name
        assert [json.loads(a)["t"] for a in lines] == [json.loads(a)["t"] for a in alone]


def _bad_outputs(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    return {
        "dir at a file": ("--jsonl-dir", a_file, "not a folder"),
        "dir in /proc": ("--jsonl-dir", "/proc/1/out", "cannot"),
        "dir under a file": ("--jsonl-dir", a_file / "sub", "cannot create"),
        "jsonl in /proc": ("--jsonl", "/proc/1/out.jsonl", "cannot write"),
        "jsonl in a missing folder": ("--jsonl", tmp_path / "nope" / "o.jsonl",
                                      "does not exist"),
        "jsonl at a folder": ("--jsonl", tmp_path, "is a folder"),
        "jsonl under a file": ("--jsonl", a_file / "o.jsonl", "does not exist"),
    }


@pytest.mark.parametrize("case", ["dir at a file", "dir in /proc", "dir under a file",
                                  "jsonl in /proc", "jsonl in a missing folder",
                                  "jsonl at a folder", "jsonl under a file"])
def test_an_output_that_cannot_be_written_fails_before_any_model_loads(tmp_path, loads, case):
    option, path, reason = _bad_outputs(tmp_path)[case]
    wav = media.speech_wav(tmp_path, "hello")
    code, _, err = run_main("--source", str(wav), "--fast", "--quiet", option, str(path))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {option}") and reason in lines[0], err
    assert loads == []  # refused before Engine.load


def test_a_writable_output_folder_is_created(tmp_path, loads):
    wav = media.speech_wav(tmp_path, "hello")
    out = tmp_path / "new" / "deeper"
    code, _, err = run_main("--source", str(wav), "--fast", "--quiet", "--jsonl-dir", str(out))
    assert code == 0, err
    assert (out / f"{wav.stem}.jsonl").read_text() and loads == [1]


def _sessions_doc(folder) -> dict:
    return json.loads((folder / "sessions.json").read_text())


def _two_sessions(tmp_path):
    """Two sources (a speech recording and its copy, other.wav) replayed with --fast into
    tmp_path/out; returns both paths, the folder and main's (exit status, stderr)."""
    a = media.speech_wav(tmp_path, "hello there, how are you")
    b = tmp_path / "other.wav"
    shutil.copy(a, b)
    out = tmp_path / "out"
    code, _, err = run_main("--source", str(a), "--source", str(b), "--fast", "--quiet",
                            "--jsonl-dir", str(out))
    return a, b, out, (code, err)


def test_the_output_folder_lists_every_session_in_sessions_json(tmp_path, loads):
    a, b, out, (code, err) = _two_sessions(tmp_path)
    assert code == 0, err
    doc = _sessions_doc(out)
    assert {"started_at", "ended_at", "sessions"} == set(doc)
    assert doc["started_at"] <= doc["ended_at"]
    rows = {r["name"]: r for r in doc["sessions"]}
    assert set(rows) == {a.stem, "other"}
    for name, row in rows.items():
        lines = (out / f"{name}.jsonl").read_text().splitlines()
        assert row["predictions"] == len(lines) > 0
        assert row["node"] == "local" and row["error"] is None and row["degraded"] is None
    assert rows["other"]["source"] == str(b) and rows[a.stem]["source"] == str(a)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["sessions.json", f"{a.stem}.jsonl", "other.jsonl"])  # no temporary file left


class _FailsOnce(torch.nn.Module):
    """The test model, failing on its ``fail_at``-th call only (whichever session makes it)."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.inner, self.calls, self.fail_at = MeanModel(), 0, fail_at
        self.config, self.name = self.inner.config, self.inner.name
        self._lock = threading.Lock()

    def forward(self, *inputs):
        with self._lock:
            self.calls += 1
            if self.calls == self.fail_at:
                raise RuntimeError("the model broke")
        return self.inner(*inputs)


def test_a_session_that_fails_part_way_is_in_sessions_json_with_its_error(tmp_path,
                                                                          monkeypatch):
    model = _FailsOnce(fail_at=4)
    monkeypatch.setattr(realtime.engine.Engine, "load",
                        classmethod(lambda cls, *a, **k: fake_engine(model)))
    _, _, out, (code, err) = _two_sessions(tmp_path)
    assert code == 1 and "the model broke" in err
    rows = _sessions_doc(out)["sessions"]
    failed = [r for r in rows if r["error"] is not None]
    assert len(failed) == 1 and len(rows) == 2
    assert failed[0]["error"] == "replay stage failed: RuntimeError: the model broke"
    for row in rows:  # each count is what its file holds, the failed one's cut short
        assert row["predictions"] == len((out / f"{row['name']}.jsonl").read_text().splitlines())
    fine = next(r for r in rows if r["error"] is None)
    assert failed[0]["predictions"] < fine["predictions"]


def test_a_single_session_that_fails_still_leaves_sessions_json(tmp_path, monkeypatch):
    monkeypatch.setattr(realtime.engine.Engine, "load",
                        classmethod(lambda cls, *a, **k: fake_engine(_FailsOnce(fail_at=2))))
    wav = media.speech_wav(tmp_path, "hello there")
    code, _, err = run_main("--source", str(wav), "--fast", "--quiet", "--jsonl-dir",
                            str(tmp_path / "out"))
    assert code == 1 and "the model broke" in err
    [row] = _sessions_doc(tmp_path / "out")["sessions"]
    assert row["error"] == "replay stage failed: RuntimeError: the model broke"
    assert row["predictions"] == 1
