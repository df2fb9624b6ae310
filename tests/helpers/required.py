"""Required parts of the product in tests: a missing one skips on a developer's machine and
fails under CI (the environment variable CI set, as `.ci/run` and CI services do).

Only a GPU or an optional model (Whisper base) may skip in CI; those tests call
`pytest.skip` themselves, with their reason."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True when $CI is set to anything but "", "0", "false" or "no" (any case)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(reason: str) -> NoReturn:
    """A required part is missing: pytest.fail under CI, pytest.skip elsewhere."""
    if in_ci():
        pytest.fail(f"required for the product, missing in CI: {reason}", pytrace=False)
    pytest.skip(f"required (fails under CI): {reason}")


def require(module: str, why: str) -> ModuleType:
    """The imported ``module``; `missing` (naming ``why`` and the import error) when it does
    not import."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing(f"{module} does not import ({exc}); {why}")


def require_file(path: Path, why: str) -> Path:
    """``path`` when it exists; `missing` otherwise."""
    if not path.exists():
        missing(f"{path} does not exist; {why}")
    return path


def require_program(name: str, why: str) -> str:
    """The full path of the program ``name`` on PATH; `missing` when it is not there."""
    found = shutil.which(name)
    if found is None:
        missing(f"{name} is not on PATH; {why}")
    return found
