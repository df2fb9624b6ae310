"""The command line's outputs (issue #25, defects 7 and 11): every session gets its own
--jsonl-dir file, whatever its sources are called; an output that cannot be written fails at
once with one line and exit 2, before any model loads."""

from __future__ import annotations

import json
import shutil

import pytest

import realtime.engine
from realtime.__main__ import parse_args, source_specs, unique_names
from tests.helpers import media
from tests.realtime.test_cli import run_main
from tests.realtime.test_pipeline import fake_engine


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
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
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
