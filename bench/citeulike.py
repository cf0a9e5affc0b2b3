"""Library-based quality on citeulike-t: our library scorer against the field's recipes (issue 4).

Run from the repository root: `python bench/citeulike.py [--users 1000] [--seed 0] [--tune-users 300]`.
Prints a Markdown table for docs/benchmarks_citeulike.md.

Data (not copied into the repository, see its PROVENANCE.md): the CVAE P=10 split of citeulike-t
(`cf-train-10-users.dat`: 10 library items per user, `cf-test-10-users.dat`: the rest of the user's
library) and the item bag of words `mult.dat` (25,975 items × 20,000 words).

Protocol: Recall@K = |top-K ∩ test| / |test| (the CVAE definition, |test| in the denominator, not
min(K, |test|)), ranking every item not in the user's training set. Users with an empty test set are
excluded. The eligible users are shuffled with `--seed`; the first `--users` are the evaluation users, the
next `--tune-users` (disjoint) are the only users the hyperparameters of our scorer are chosen on.

References:
1. arxiv-sanity-lite: per-user LinearSVC(C=0.01, class_weight="balanced", tol=1e-6, max_iter=10000) on
   TF-IDF with sublinear TF (arxiv-sanity-lite's weighting), the 10 library items as positives and every
   other item as a negative; score = decision_function.
2. zotero-arxiv-daily: mean cosine similarity of the candidate to the library items, on the same TF-IDF
   (zotero-arxiv-daily embeds abstracts with a sentence encoder; only a bag of words exists here).
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from rich.progress import Progress
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.svm import LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feedsvc.rank.library import latent_basis, library_scores, project, weight_counts

ROOT = Path(__file__).resolve().parent.parent
KS = (20, 50, 100, 300)
Scorer = Callable[[int], np.ndarray]  # user id -> a score for every item


def read_lists(path: Path) -> list[list[int]]:
    """`<count> <item> <item> ...` per line, line number = user id."""
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts and int(parts[0]) != len(parts) - 1:
            raise ValueError(f"{path.name}: count does not match line {len(out)}")
        out.append([int(x) for x in parts[1:]])
    return out


def read_mult(path: Path, vocab: int = 20_000) -> sp.csr_matrix:
    """`<n_distinct> <word_id>:<count> ...` per line, line number = item id."""
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        for tok in line.split()[1:]:
            w, c = tok.split(":")
            rows.append(i)
            cols.append(int(w))
            vals.append(float(c))
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(lines), vocab))


def recall_at(scores: np.ndarray, train: list[int], test: list[int]) -> np.ndarray:
    s = np.array(scores, dtype=np.float64).ravel()
    s[train] = -np.inf
    top = np.argpartition(-s, max(KS))[: max(KS)]
    top = top[np.argsort(-s[top], kind="stable")]
    t = set(test)
    return np.array([len(t.intersection(top[:k].tolist())) / len(t) for k in KS])


def evaluate(scorer: Scorer, users: np.ndarray, train, test, progress: Progress, label: str) -> np.ndarray:
    """Per-user Recall@KS, shape (len(users), len(KS))."""
    task = progress.add_task(label, total=len(users))
    out = []
    for u in users:
        out.append(recall_at(scorer(int(u)), train[u], test[u]))
        progress.advance(task)
    progress.remove_task(task)
    return np.array(out)


def svm_scores(X: sp.csr_matrix, library: list[int]) -> np.ndarray:
    y = np.zeros(X.shape[0])
    y[library] = 1
    clf = LinearSVC(C=0.01, class_weight="balanced", tol=1e-6, max_iter=10_000)
    return clf.fit(X, y).decision_function(X)


def evaluate_svm(X, users, train, test, progress: Progress, jobs: int) -> np.ndarray:
    task = progress.add_task("SVM (arxiv-sanity-lite)", total=len(users))

    def one(u: int) -> np.ndarray:
        return recall_at(svm_scores(X, train[u]), train[u], test[u])

    out = []
    for r in Parallel(n_jobs=jobs, return_as="generator")(delayed(one)(int(u)) for u in users):
        out.append(r)
        progress.advance(task)
    progress.remove_task(task)
    return np.array(out)


def aggregate_scorer(X: sp.csr_matrix, train, how: str) -> Scorer:
    """Aggregations of the per-library-item cosines (variants tried)."""

    def f(u: int) -> np.ndarray:
        sims = (X @ X[train[u]].T).toarray()
        if how == "max":
            return sims.max(axis=1)
        if how == "top3":
            return np.sort(sims, axis=1)[:, -3:].sum(axis=1)
        if how.startswith("lse"):
            t = float(how[3:])
            m = sims.max(axis=1, keepdims=True)
            return m[:, 0] + t * np.log(np.exp((sims - m) / t).sum(axis=1))
        if how == "mean+0.25max":
            return sims.mean(axis=1) + 0.25 * sims.max(axis=1)
        raise ValueError(how)

    return f


def ours(X, train, Z: np.ndarray | None = None, **params) -> Scorer:
    """Our scorer; `Z` = the items in the latent view (projected once, not per user)."""
    if Z is None:
        return lambda u: library_scores(X, X[train[u]], **params)
    return lambda u: library_scores(X, X[train[u]], latent=(Z, Z[train[u]]), **params)


def bootstrap_ratio(a: np.ndarray, b: np.ndarray, seed: int, n: int = 2000) -> tuple[float, float]:
    """95% paired-bootstrap interval of mean(a) / mean(b) over users."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n, len(a)))
    ratios = a[idx].mean(axis=1) / b[idx].mean(axis=1)
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return float(lo), float(hi)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "../shared/data/recsys_benchmark/citeulike-t")
    ap.add_argument("--users", type=int, default=1000, help="evaluation users (at least 1,000 to report)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--tune-users", type=int, default=300, help="disjoint users the hyperparameters are tuned on"
    )
    ap.add_argument("--jobs", type=int, default=2, help="processes for the per-user SVMs")
    ap.add_argument("--latent-dims", type=int, default=300)
    ap.add_argument("--skip-svm", action="store_true", help="leave out the slow SVM reference")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()

    train = read_lists(args.data / "cf-train-10-users.dat")
    test = read_lists(args.data / "cf-test-10-users.dat")
    counts = read_mult(args.data / "mult.dat")
    if len(train) != len(test):
        raise SystemExit("train and test files disagree on the number of users")
    eligible = np.array([u for u in range(len(train)) if test[u]])
    perm = np.random.default_rng(args.seed).permutation(eligible)
    if args.users + args.tune_users > len(perm):
        raise SystemExit(f"only {len(perm)} users have a test set; asked for {args.users}+{args.tune_users}")
    users, tune = perm[: args.users], perm[args.users : args.users + args.tune_users]

    # the references' representation: arxiv-sanity-lite's sublinear TF-IDF, L2 rows
    X_ref = TfidfTransformer(sublinear_tf=True).fit_transform(counts).tocsr()
    X_ref.sort_indices()
    results: dict[str, np.ndarray] = {}
    tuning: list[str] = []
    with Progress(transient=True) as progress:
        # --- tune our scorer on the tuning users only ---------------------------------------------
        spaces = {p: weight_counts(counts, idf_power=p) for p in (1.0, 1.5, 2.0)}
        best = (-1.0, 1.5, 0.0)
        for p, b in itertools.product(spaces, (0.0, 1.0, 2.0, 3.0, 4.0)):
            r = evaluate(ours(spaces[p], train, background_weight=b), tune, train, test, progress, "tune")
            tuning.append(f"idf^{p}, background {b}: {r[:, 1].mean():.4f}")
            best = max(best, (r[:, 1].mean(), p, b))
        _, idf_power, background = best
        X = spaces[idf_power]
        basis = latent_basis(X, args.latent_dims, seed=args.seed)
        Z = project(X, basis)
        best_l = (-1.0, 0.0)
        for lw in (0.0, 0.3, 0.6, 1.0, 1.5, 2.0, 3.0):
            scorer = ours(X, train, Z, background_weight=background, latent_weight=lw)
            r = evaluate(scorer, tune, train, test, progress, "tune latent")
            tuning.append(f"idf^{idf_power}, background {background}, latent {lw}: {r[:, 1].mean():.4f}")
            best_l = max(best_l, (r[:, 1].mean(), lw))
        latent_weight = best_l[1]
        t_tuned = time.perf_counter()

        # --- evaluation users ---------------------------------------------------------------------
        def run(label: str, scorer: Scorer) -> None:
            results[label] = evaluate(scorer, users, train, test, progress, label)

        if not args.skip_svm:
            t_svm = time.perf_counter()
            results["ref: SVM (arxiv-sanity-lite)"] = evaluate_svm(
                X_ref, users, train, test, progress, args.jobs
            )
            t_svm = time.perf_counter() - t_svm
        run("ref: mean cosine (zotero-arxiv-daily)", ours(X_ref, train, background_weight=0.0))
        for how in ("max", "top3", "lse0.1", "mean+0.25max"):
            run(f"tried: {how} of cosines", aggregate_scorer(X_ref, train, how))
        run(f"tried: mean cosine, idf^{idf_power}", ours(X, train, background_weight=0.0))
        run(f"tried: Rocchio (b={background}), idf^{idf_power}", ours(X, train, background_weight=background))
        run(
            f"tried: Rocchio (b={background}) in LSA-{basis.shape[0]} only",
            ours(Z, train, background_weight=background),
        )
        final = f"**ours: Rocchio b={background} + {latent_weight}·LSA-{basis.shape[0]}, idf^{idf_power}**"
        run(final, ours(X, train, Z, background_weight=background, latent_weight=latent_weight))

    wall = time.perf_counter() - t0
    print(f"## citeulike-t, CVAE P=10 split, {len(users)} evaluation users (seed {args.seed})\n")
    print(f"Eligible users (non-empty test set): {len(eligible)} of {len(train)}; evaluated {len(users)};")
    print(f"tuned on {len(tune)} disjoint users. Recall@K = |top-K ∩ test| / |test|, over all items")
    print("not in the user's training set.\n")
    print("| method | " + " | ".join(f"R@{k}" for k in KS) + " |")
    print("|---|" + "---|" * len(KS))
    for label, r in results.items():
        print(f"| {label} | " + " | ".join(f"{x:.4f}" for x in r.mean(axis=0)) + " |")
    refs = {k: v for k, v in results.items() if k.startswith("ref:")}
    best_ref = max(refs, key=lambda k: refs[k][:, 1].mean())
    ratio = results[final][:, 1].mean() / refs[best_ref][:, 1].mean()
    lo, hi = bootstrap_ratio(results[final][:, 1], refs[best_ref][:, 1], args.seed)
    print(f"\nRatio ours / better reference ({best_ref.removeprefix('ref: ')}) at R@50: **{ratio:.3f}**")
    verdict = "met" if ratio >= 1.15 else "NOT met"
    print(f"(95% paired bootstrap over users: {lo:.3f}-{hi:.3f}); target 1.15: {verdict}.")
    print("\nTuning (R@50 on the tuning users): " + "; ".join(tuning))
    print(f"\nWall time {wall:.0f} s (tuning {t_tuned - t0:.0f} s", end="")
    print(f", SVM {t_svm:.0f} s with {args.jobs} processes)" if not args.skip_svm else ")", end="")
    print(f"; Python {platform.python_version()}, {platform.machine()}.")


if __name__ == "__main__":
    main()
