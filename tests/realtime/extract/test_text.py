"""realtime.extract.text: MiniLM word vectors for ASR words, normalised like MOSI transcripts."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.extract.text import TEXT_DIM, TextFeaturizer, normalize_word
from realtime.types import Word


@pytest.fixture(scope="module")
def featurizer():
    return TextFeaturizer()


def words(text: str) -> list[Word]:
    return [Word(i * 0.3, i * 0.3 + 0.25, t, True) for i, t in enumerate(text.split())]


def test_shape_and_values(featurizer):
    out = featurizer.encode(words("I really love this movie"))
    assert TEXT_DIM == 384
    assert out.shape == (5, TEXT_DIM) and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and np.all(np.linalg.norm(out, axis=1) > 1.0)
    assert featurizer.encode([]).shape == (0, TEXT_DIM)


def test_vectors_are_contextual(featurizer):
    a = featurizer.encode(words("the movie was great"))[3]
    b = featurizer.encode(words("the movie was not great"))[4]
    assert not np.allclose(a, b, atol=1e-3)
    cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert 0.3 < cos < 0.999


def test_punctuation_and_case_do_not_matter(featurizer):
    a = featurizer.encode(words("It was Wonderful, really."))
    b = featurizer.encode(words("it was wonderful really"))
    assert np.allclose(a, b, atol=1e-5)


def test_punctuation_only_word_is_encoded(featurizer):
    out = featurizer.encode(words("well ... okay"))
    assert out.shape == (3, TEXT_DIM) and np.all(np.isfinite(out))


def test_normalize_word():
    assert normalize_word("Wonderful,") == "wonderful"
    assert normalize_word("don't!") == "don't"
    assert normalize_word("'quoted'") == "quoted"
    assert normalize_word("...") == ""
