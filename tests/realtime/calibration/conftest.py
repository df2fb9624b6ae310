"""Fixtures the calibration tests share: a short face-and-voice recording and a small base
model to calibrate from."""

from __future__ import annotations

import pytest
import torch

from models import checkpoint
from models.base import InputDims
from models.registry import create
from tests.helpers import media


@pytest.fixture(scope="module")
def av_file(tmp_path_factory):
    """A 3 s, 10 fps face video with speech ("hello there")."""
    return media.face_video(tmp_path_factory.mktemp("av"), seconds=3.0, fps=10,
                            with_audio_text="hello there")


@pytest.fixture
def base_dir(tmp_path):
    """An untrained small MMLatch checkpoint (text 4, audio 3, video 5), seed 0."""
    torch.manual_seed(0)
    model = create("mmlatch", InputDims(4, 3, 5), hidden=4, head_hidden=4).eval()
    return checkpoint.save(model, tmp_path / "base", meta={"note": "test base"})
