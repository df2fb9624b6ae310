"""The shipped default model (assets/model): loadable, small, fits the live extractors, and
its sentiment was learned (clear sentences get the right sign; a face does not flip it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import checkpoint
from models.base import InputDims
from realtime.assets import default_model_dir
from realtime.extract.acoustic import ACOUSTIC_DIM
from realtime.extract.face import FACE_DIM, FACE_PRESENT_INDEX
from realtime.extract.text import TEXT_DIM

POSITIVE = ("i really loved this movie it was great", "the acting was wonderful and funny",
            "it is a beautiful film i enjoyed every minute", "awesome i would watch it again")
NEGATIVE = ("i hated this movie it was terrible", "the acting was awful and boring",
            "it is a stupid film i wasted my time", "the worst thing i have ever seen")


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return checkpoint.load(default_model_dir())


@pytest.fixture(scope="module")
def encoder():
    from models.text_encoder import WordEncoder

    return WordEncoder.load()


def _predict(model, text: np.ndarray, face: bool = False, seed: int = 0) -> float:
    steps = len(text)
    video = np.zeros((steps, FACE_DIM), np.float32)
    if face:
        rng = np.random.default_rng(seed)
        video = np.clip(rng.beta(0.6, 3.0, (steps, FACE_DIM)), 0, 1).astype(np.float32)
        video[:, FACE_PRESENT_INDEX] = 1.0
    x = [torch.from_numpy(a)[None] for a in (text, np.zeros((steps, ACOUSTIC_DIM), np.float32),
                                                video)]
    with torch.inference_mode():
        return float(model(*x, torch.tensor([steps])).sentiment[0])


def test_checkpoint_files_and_dims(model):
    folder = default_model_dir()
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    assert size <= 20 * 1024 * 1024, f"assets/model is {size} bytes (limit 20 MB)"
    assert model.config.dims == InputDims(TEXT_DIM, ACOUSTIC_DIM, FACE_DIM)
    meta = checkpoint.read_meta(folder)
    assert meta["data"] == "spoken-mosi"
    assert meta["valid"]["acc2_non0"] > 0.7  # selection-time validation accuracy
    assert not model.training


def test_learned_sentiment_from_words(model, encoder):
    pos = [_predict(model, encoder.encode(s.split())) for s in POSITIVE]
    neg = [_predict(model, encoder.encode(s.split())) for s in NEGATIVE]
    assert all(-3 <= p <= 3 for p in pos + neg)
    assert min(pos) > 0 > max(neg), (pos, neg)
    assert np.mean(pos) - np.mean(neg) > 1.0


def test_a_face_does_not_flip_the_words(model, encoder):
    for sentence in POSITIVE + NEGATIVE:
        text = encoder.encode(sentence.split())
        plain = _predict(model, text)
        faced = [_predict(model, text, face=True, seed=s) for s in range(3)]
        assert all(np.sign(f) == np.sign(plain) for f in faced), (sentence, plain, faced)
        assert max(abs(f - plain) for f in faced) < 1.0
