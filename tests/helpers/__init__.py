"""Test helpers: generated media (`media`), pipeline and dashboard stand-ins (`fakes`)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
