"""Word features for the live window: MiniLM contextual embeddings pooled per word.

A thin wrapper over `models.text_encoder.WordEncoder` (the same encoder that training
uses), for `Word` objects from the streaming ASR. Words are normalised the way CMU-MOSI
transcripts are written (lower case, no punctuation) before encoding, so live text looks
like the training text; a word that is only punctuation is encoded as [UNK].
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from models.text_encoder import TEXT_DIM, WordEncoder
from realtime.types import Word

__all__ = ["TEXT_DIM", "TextFeaturizer", "normalize_word"]


def normalize_word(text: str) -> str:
    """The one word normaliser: lower case, no punctuation, inner apostrophes kept
    ("Wonderful," -> "wonderful", "Don't!" -> "don't", "'quoted'" -> "quoted"). Words are
    encoded in this form, and the streaming ASR compares hypotheses in it."""
    return re.sub(r"[^\w']+", "", text.lower()).strip("'")


class TextFeaturizer:
    """encode(words) -> (len(words), TEXT_DIM) float32; each row depends on the words around
    it. The encoder is loaded once per process and device (`WordEncoder.load`)."""

    def __init__(self, encoder: WordEncoder | None = None, device: str = "cpu") -> None:
        self.encoder = encoder or WordEncoder.load(device=device)

    def encode(self, words: Sequence[Word]) -> np.ndarray:
        return self.encoder.encode([normalize_word(w.text) for w in words])

    def encode_many(self, lists: Sequence[Sequence[Word]]) -> list[np.ndarray]:
        """`encode` for several windows' words in one forward pass (many sessions)."""
        return self.encoder.encode_many([[normalize_word(w.text) for w in words]
                                         for words in lists])
