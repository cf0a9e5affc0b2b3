"""Train the rhetorical-role model the extractive card writer ships (`feedsvc/cards/roles_model.json`).

Run: `.venv/bin/python bench/train_roles.py [DEV.jsonl]` (default ../shared/data/abstract_roles/dev.jsonl:
Scholar Inbox's user-labelled problem, task, idea and result spans). A sentence is a positive for a role
when it holds at least 60% of one of that role's spans (the measure `cards.py roles` uses). One L2-regularised
logistic regression for problem-or-task and for result, trained by AdaGrad over sparse features
(`roles.features`; features seen in fewer than 5 sentences are dropped, weights near zero pruned), and a
listwise ranker for the idea sentence (`train_idea`, over `roles.idea_features`).
Prints 5-fold cross-validated figures (folds by abstract) of the fields built by the extractive writer's own
functions, then writes the model trained on all of the file. `--cv-only` skips the write.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import statistics
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feedsvc.cards.extractive import (  # noqa: E402
    intuition_text,
    result_sentences,
    sentences,
    significance_sentence,
)
from feedsvc.cards.roles import ROLES, RoleModel, features, idea_features, own_work_index  # noqa: E402

# ../shared from the main checkout, ../../shared from a worktree under wt/
DEFAULT = (
    next(
        (p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.is_dir()),
        ROOT.parent / "shared",
    )
    / "data"
    / "abstract_roles"
    / "dev.jsonl"
)
LABELS = {"problem_task": ("problem", "task"), "idea": ("idea",), "result": ("result",)}
MODEL = ROOT / "feedsvc" / "cards" / "roles_model.json"


def norm(s: str) -> str:
    return re.sub(r"\s+", " ", s or "").strip().lower()


def covers(field: str, span: str) -> bool:
    """The evaluation's measure: at least 60% of the span's characters, word by word, are in `field`."""
    f, words = norm(field), norm(span).split()
    return bool(words) and sum(len(w) for w in words if w in f) >= 0.6 * sum(len(w) for w in words)


def examples(abstracts: list[dict]) -> list[tuple[set[str], dict[str, int]]]:
    out = []
    for a in abstracts:
        parts = sentences(a["abstract"])
        own = own_work_index(parts)
        for i, s in enumerate(parts):
            y = {
                role: int(any(covers(s, sp["text"]) for sp in a["spans"] if sp["label"] in labels))
                for role, labels in LABELS.items()
            }
            out.append((features(parts, i, own), y))
    return out


def idea_lists(abstracts: list[dict]) -> list[tuple[list[set[str]], list[int]]]:
    """Per abstract with an idea span that a sentence holds: each sentence's `idea_features` and whether
    it holds an idea span."""
    out = []
    for a in abstracts:
        parts = sentences(a["abstract"])
        own = own_work_index(parts)
        ideas = [sp["text"] for sp in a["spans"] if sp["label"] in LABELS["idea"]]
        y = [int(any(covers(p, x) for x in ideas)) for p in parts]
        if any(y):
            out.append(([idea_features(parts, i, own) for i in range(len(parts))], y))
    return out


def train_idea(lists: list[tuple[list[set[str]], list[int]]], epochs: int = 8, l2: float = 1e-3) -> dict:
    """The listwise idea ranker: softmax cross-entropy over each abstract's sentences (the target spread
    evenly over the sentences holding an idea span), AdaGrad at rate 0.05, features seen at least 3 times."""
    counts = Counter(f for feats, _ in lists for s in feats for f in s)
    kept = {f for f, n in counts.items() if n >= 3}
    w: dict[str, float] = {}
    g2: dict[str, float] = {}
    rng = random.Random(0)
    order = list(range(len(lists)))
    for _ in range(epochs):
        rng.shuffle(order)
        for k in order:
            feats, y = lists[k]
            z = [sum(w.get(f, 0.0) for f in s if f in kept) for s in feats]
            e = [math.exp(v - max(z)) for v in z]
            grad: dict[str, float] = {}
            for s, p, t in zip(feats, e, y, strict=True):
                for f in s & kept:
                    grad[f] = grad.get(f, 0.0) + p / sum(e) - t / sum(y)
            for f, g in grad.items():
                g += l2 * w.get(f, 0.0)
                g2[f] = g2.get(f, 1e-8) + g * g
                w[f] = w.get(f, 0.0) - 0.05 * g / math.sqrt(g2[f])
    return {f: round(v, 3) for f, v in sorted(w.items()) if abs(v) >= 0.02}


def train(abstracts: list[dict], epochs: int = 5, l2: float = 1e-2) -> RoleModel:
    """Logistic regressions for problem-or-task and result, the listwise ranker for the idea."""
    data = examples(abstracts)
    counts = Counter(f for feats, _ in data for f in feats)
    kept = {f for f, n in counts.items() if n >= 5}
    rng = random.Random(0)
    bias: dict[str, float] = {"idea": 0.0}
    weights: dict[str, dict[str, float]] = {"idea": train_idea(idea_lists(abstracts))}
    for role in ROLES:
        if role == "idea":
            continue
        w: dict[str, float] = {}
        g2: dict[str, float] = {}
        b, gb = 0.0, 1e-8
        order = list(range(len(data)))
        for _ in range(epochs):
            rng.shuffle(order)
            for k in order:
                feats, y = data[k]
                fs = [f for f in feats if f in kept]
                z = b + sum(w.get(f, 0.0) for f in fs)
                p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
                g = p - y[role]
                gb += g * g
                b -= 0.1 * g / math.sqrt(gb)
                for f in fs:
                    gf = g + l2 * w.get(f, 0.0)
                    g2[f] = g2.get(f, 1e-8) + gf * gf
                    w[f] = w.get(f, 0.0) - 0.1 * gf / math.sqrt(g2[f])
        bias[role] = round(b, 4)
        weights[role] = {f: round(v, 3) for f, v in sorted(w.items()) if abs(v) >= 0.05}
    return RoleModel(bias=bias, weights=weights)


def measure(abstracts: list[dict], model: RoleModel) -> dict[str, list[int]]:
    """The `cards.py roles` figures for these abstracts, with fields built by the writer's functions."""
    t = {"idea": [0, 0], "problem_task": [0, 0], "result": [0, 0], "wi": [], "wr": []}
    for a in abstracts:
        parts = sentences(a["abstract"])
        roles = model.score(parts)
        intuition = intuition_text(parts, roles)
        results = result_sentences(parts, roles, intuition)
        line = " ".join([*results, significance_sentence(parts, [intuition, *results])])
        t["wi"].append(len(intuition.split()))
        t["wr"].append(len(line.split()))
        for role, field in (("idea", intuition), ("problem_task", intuition), ("result", line)):
            spans = [sp["text"] for sp in a["spans"] if sp["label"] in LABELS[role]]
            if spans:
                t[role][1] += 1
                t[role][0] += any(covers(field, sp) for sp in spans)
    return t


def report(t: dict[str, list[int]]) -> str:
    return (
        f"intuition covers idea {t['idea'][0]}/{t['idea'][1]} = {t['idea'][0] / t['idea'][1]:.2f}; "
        f"problem|task {t['problem_task'][0]}/{t['problem_task'][1]} = "
        f"{t['problem_task'][0] / t['problem_task'][1]:.2f}; result line covers result "
        f"{t['result'][0]}/{t['result'][1]} = {t['result'][0] / t['result'][1]:.2f}; median words: "
        f"intuition {statistics.median(t['wi'])}, result line {statistics.median(t['wr'])}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dev", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--cv-only", action="store_true")
    args = ap.parse_args()
    abstracts = [json.loads(line) for line in args.dev.read_text().splitlines() if line.strip()]
    folds = 5
    total: dict[str, list] = {}
    for k in range(folds):
        test = abstracts[k::folds]
        rest = [a for i, a in enumerate(abstracts) if i % folds != k]
        t = measure(test, train(rest))
        for key, v in t.items():
            total[key] = (
                [x + y for x, y in zip(total[key], v, strict=True)]
                if key in total and key[0] != "w"
                else (total.get(key, []) + v if key[0] == "w" else v)
            )
    print(f"{folds}-fold cross-validated: " + report(total))
    if not args.cv_only:
        model = train(abstracts)
        MODEL.write_text(json.dumps(model.to_json(), separators=(",", ":"), sort_keys=True) + "\n")
        print(
            f"wrote {MODEL.relative_to(ROOT)} ({MODEL.stat().st_size // 1024} KB); on its training data: "
            + report(measure(abstracts, model))
        )


if __name__ == "__main__":
    main()
