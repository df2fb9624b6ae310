"""tests.helpers.required: a missing required part skips here and fails under CI."""

from __future__ import annotations

import pytest
from _pytest.outcomes import Failed, Skipped

from tests.helpers.required import in_ci, require, require_file, require_program


@pytest.mark.parametrize("value, expect", [
    ("true", True), ("1", True), ("yes", True), ("", False), ("0", False), ("false", False),
    ("No", False)])
def test_ci_is_any_value_but_the_false_ones(monkeypatch, value, expect):
    monkeypatch.setenv("CI", value)
    assert in_ci() is expect


def test_a_missing_module_skips_here_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(Skipped, match="no_such_module_xyz does not import.*for the tests"):
        require("no_such_module_xyz", "for the tests")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(Failed, match="missing in CI: no_such_module_xyz"):
        require("no_such_module_xyz", "for the tests")
    assert require("json", "present").dumps([]) == "[]"


def test_missing_files_and_programs_fail_in_ci(monkeypatch, tmp_path):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(Failed, match="does not exist; a file"):
        require_file(tmp_path / "nothing", "a file")
    with pytest.raises(Failed, match="not on PATH; a program"):
        require_program("no-such-program-xyz", "a program")
    assert require_file(tmp_path, "here") == tmp_path
    assert require_program("sh", "a shell").endswith("/sh")
