"""The paper's tables, and what can be measured on the bank alone.

- `tune_params`: choose alpha, beta, tau, k, gamma by leave-one-out over the rated instances,
  using each rating's stored y' as a one-hot p (no model pass, numpy only, so the engine can
  run it after any bank change, when the instance rule is next used). Test data is never seen.
- `leave_one_out_agreement`: the Bank view's figure: on the user's own ratings held out one at a
  time, how often the raw model and how often CM give the user's answer.
- `evaluate`: held-out queries x strategies x memory variants + the 1-NN baseline; one scoring pass
  per (query, prompt) serves every variant.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from cm_desktop.cancel import check
from cm_desktop.cm import VARIANTS
from cm_desktop.cm import marginalize as mz
from cm_desktop.cm.retrieval import Embedder, RatingIndex, default_embedder, normalise_text

# The grid the bank is tuned on. k=1 with gamma large is 1-NN itself, so the tuned rule never
# scores below nearest neighbour on the bank's own leave-one-out.
GRID = {
    "k": (1, 5, 10, 20, 40),
    "tau": (0.02, 0.05, 0.1, 0.3),
    "beta": (0.0, 5.0, 20.0),
    "gamma": (0.5, 1.0, 2.0, 4.0, 16.0),
    "alpha": (1.0,),
}


@dataclass
class TuneResult:
    params: mz.CMParams
    loo_accuracy: float
    n: int
    model_accuracy: float
    knn_accuracy: float


MAX_HELD_OUT = 2000     # tuning holds out at most this many ratings (a fixed sample): bounded time
_CHUNK = 1024           # similarity rows computed at once: bounded memory on big banks


def _loo_rows(index: RatingIndex) -> np.ndarray:
    """The ratings held out in turn: the current model's only (another model's stored y' says
    nothing about what this model would answer)."""
    rows = np.flatnonzero(index.current)
    if len(rows) <= MAX_HELD_OUT:
        return rows
    return np.sort(np.random.default_rng(0).choice(rows, MAX_HELD_OUT, replace=False))


def _loo_neighbours(index: RatingIndex, k_max: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each held-out rating in `rows`, its k_max nearest other ratings, best first."""
    e = index.embeddings
    k = min(k_max, len(index) - 1)
    out_idx, out_sims = [], []
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start:start + _CHUNK]
        sims = e[chunk] @ e.T
        sims[np.arange(len(chunk)), chunk] = -np.inf          # never its own neighbour
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        out_idx.append(np.take_along_axis(top, order, axis=1))
        out_sims.append(np.take_along_axis(top_sims, order, axis=1))
    return np.vstack(out_idx), np.vstack(out_sims)


def _loo_predictions(index: RatingIndex, counts: np.ndarray, rows: np.ndarray, nb_idx: np.ndarray,
                     nb_sims: np.ndarray, params: mz.CMParams) -> np.ndarray:
    """Instance-dependent CM's answer for each held-out rating, p = one-hot(stored y'), vectorised.

    With one-hot p the posterior is row y' of T_x, so only that row is built.
    """
    n, r = len(rows), counts.shape[0]
    m, u = index.model_idx[rows], index.user_idx[rows]
    k = min(params.k, nb_idx.shape[1])
    idx, sims = nb_idx[:, :k], nb_sims[:, :k]
    w = np.exp((sims - sims[:, :1]) / params.tau)
    w = w / w.sum(axis=1, keepdims=True)
    rows_n = np.repeat(np.arange(n), k)
    nb_user = index.user_idx[idx]
    vote = np.zeros((n, r))
    np.add.at(vote, (rows_n, nb_user.ravel()), w.ravel())
    row = counts[m].copy()                                  # n(y'_i, .) without rating i itself
    row[np.arange(n), u] -= 1.0
    same = (index.model_idx[idx] == m[:, None]) & index.current[idx]   # same y', same model
    np.add.at(row, (rows_n, nb_user.ravel()), (params.beta * w * same).ravel())
    row[np.arange(n), m] += params.alpha
    tot = row.sum(axis=1, keepdims=True)
    empty = tot[:, 0] <= 0
    row[empty, m[empty]] = 1.0
    tot[empty] = 1.0
    q = row / tot
    total = counts.sum() - 1.0
    a = (np.trace(counts) - (m == u)) / max(total, 1.0)    # agreement without rating i
    lam = np.clip(a, 0, 1) ** params.gamma
    final = lam[:, None] * q + (1 - lam[:, None]) * vote
    return final.argmax(axis=1)


def tune_params(index: RatingIndex, counts: np.ndarray, grid: dict | None = None,
                cancel=None) -> TuneResult:
    """The grid point with the best leave-one-out accuracy on the bank (first one on ties)."""
    grid = grid or GRID
    rows = _loo_rows(index)
    n = len(rows)
    if n < 3 or len(index) < 3:
        return TuneResult(mz.CMParams(), 0.0, n, 0.0, 0.0)
    nb_idx, nb_sims = _loo_neighbours(index, max(grid["k"]), rows)
    u = index.user_idx[rows]
    best, best_acc = mz.CMParams(), -1.0
    for k, tau, beta, gamma, alpha in itertools.product(
            grid["k"], grid["tau"], grid["beta"], grid["gamma"], grid["alpha"]):
        if k == 1 and tau != grid["tau"][0]:
            continue                        # one neighbour: the temperature changes nothing
        check(cancel)
        params = mz.CMParams(alpha=alpha, beta=beta, tau=tau, k=k, gamma=gamma)
        acc = float(np.mean(_loo_predictions(index, counts, rows, nb_idx, nb_sims, params) == u))
        if acc > best_acc + 1e-12:
            best, best_acc = params, acc
    model_acc = float(np.mean(index.model_idx[rows] == u))
    knn_acc = float(np.mean(index.user_idx[nb_idx[:, 0]] == u))
    return TuneResult(best, best_acc, n, model_acc, knn_acc)


# The evidence rule's grid. Larger strengths come first: on a tie the model keeps its say (a
# thin bank's leave-one-out cannot tell, and the model is what a thin bank has).
MIN_EVIDENCE_TUNING = 5   # fewer ratings: the defaults (the prior and the classifier stay off)
LIKELIHOOD_FLOOR = 1e-4   # a held-out answer's probability is counted as at least this (log 0)
EVIDENCE_GRID = {
    "strength": (3.0, 1.0, 0.3, 0.1, 0.03, 0.01),
    "tau": (0.05, 0.1, 0.2),
    "k": (10,),
    "beta": (0.0, 5.0),
    "prior": (0.0, 0.3, 0.6),
    "bank_weight": (0.0, 0.1, 0.3, 1.0),
}


@dataclass
class EvidenceTuneResult:
    params: mz.EvidenceParams
    loo_accuracy: float
    n: int


def tune_evidence(index: RatingIndex, counts: np.ndarray, prior_bank: np.ndarray | None = None,
                  estimate_bank: np.ndarray | None = None, grid: dict | None = None,
                  cancel=None) -> EvidenceTuneResult:
    """The evidence rule's parameters by leave-one-out over the ratings (test data never seen):
    the grid point with the best held-out accuracy, or with fewer ratings than responses the best
    held-out log-likelihood (first one on ties).

    The model's distribution for each rated instance is the index's `model_p` (stored with the
    rating, else one-hot y'). prior_bank: response_prior rows for the rated instances (None: the
    prior stays off). estimate_bank: the bank classifier's b(y|x) for each rated instance from a
    classifier that did not see it (cross-fitted; None: that term stays off).
    """
    grid = grid or EVIDENCE_GRID
    n, r = len(index), counts.shape[0]
    # Fewer ratings than responses: most responses have none, and accuracy over so few held-out
    # ratings moves in steps of 1/n, so the maximum over the grid is mostly luck. The
    # log-likelihood of the user's answers (a proper score, smooth in the parameters) chooses
    # then. Measured on the curves' pools (3 orders each, 25 ratings, response texts weighing one
    # rating each): banking77 +28.3 -> +35.7 points over the best baseline, clinc +22.7 -> +28.5;
    # at 300 ratings the log-likelihood chose worse than accuracy (banking77 +0.3 against +3.3),
    # hence the switch.
    by_likelihood = n < r
    if n < MIN_EVIDENCE_TUNING:
        return EvidenceTuneResult(mz.EvidenceParams(), 0.0, n)
    rows = _loo_rows(index)
    nb_idx, nb_sims = _loo_neighbours(index, max(grid["k"]), rows)
    m_idx, u = index.model_idx[rows], index.user_idx[rows]
    p = index.model_p[rows]
    prior = None if prior_bank is None else np.asarray(prior_bank)[rows]
    estimate = None if estimate_bank is None else np.asarray(estimate_bank)[rows]
    priors = grid["prior"] if prior is not None else (0.0,)
    weights = grid["bank_weight"] if estimate is not None else (0.0,)
    nb_model, nb_user = index.model_idx[nb_idx], index.user_idx[nb_idx]
    best, best_score, best_acc = mz.EvidenceParams(), -np.inf, 0.0
    held = np.arange(len(rows))
    for tau, k, beta, pr in itertools.product(grid["tau"], grid["k"], grid["beta"], priors):
        check(cancel)
        base = mz.EvidenceParams(tau=tau, k=k, beta=beta, prior=pr)
        m = mz.evidence_model_part(p, counts, nb_model, nb_user, nb_sims, base, prior,
                                   held_out=(m_idx, u))
        for strength, bw in itertools.product(grid["strength"], weights):
            params = mz.EvidenceParams(strength=strength, tau=tau, k=k, beta=beta, prior=pr,
                                       bank_weight=bw)
            q = mz.evidence_combine(m, nb_user, nb_sims, params, estimate)
            acc = float(np.mean(q.argmax(axis=1) == u))
            score = acc
            if by_likelihood:
                mine = q[held, u] / np.maximum(q.sum(axis=1), 1e-300)
                score = float(np.mean(np.log(np.maximum(mine, LIKELIHOOD_FLOOR))))
            if score > best_score + 1e-12:
                best, best_score, best_acc = params, score, acc
    return EvidenceTuneResult(best, best_acc, n)


def counts_matrix(index: RatingIndex) -> np.ndarray:
    """n(y', y) over the current model's ratings (another model's y' are not this model's)."""
    r = len(index.responses)
    c = np.zeros((r, r))
    cur = index.current
    np.add.at(c, (index.model_idx[cur], index.user_idx[cur]), 1.0)
    return c


def leave_one_out_agreement(bank, profile: str, embedder: Embedder | None = None,
                            cancel=None, fingerprint: str | None = None) -> dict:
    """{"n", "model", "cm"}: on the user's own ratings held out one at a time, the share where the
    raw model (y' == y) and where CM (stored y' as one-hot p, plus the other rated instances) gives
    the user's answer. No model pass. (CM's parameters are tuned on the same leave-one-out, so its
    figure is slightly optimistic.)"""
    index = RatingIndex(bank, profile, embedder or default_embedder(), fingerprint)
    cur = index.current
    n = int(cur.sum())
    if n == 0:
        return {"n": 0, "model": 0.0, "cm": 0.0}
    if n < 3 or len(index) < 3:
        acc = float(np.mean(index.model_idx[cur] == index.user_idx[cur]))
        return {"n": n, "model": acc, "cm": acc}
    res = tune_params(index, counts_matrix(index), cancel=cancel)
    return {"n": n, "model": res.model_accuracy, "cm": res.loo_accuracy}


# ---- held-out evaluation ------------------------------------------------------------------------

def held_out_queries(records: Sequence[dict], bank, profile: str, limit: int | None,
                     seed: int) -> list[dict]:
    """Records whose input is not in the bank (case/whitespace ignored), deduplicated, shuffled
    with `seed`, the first `limit`."""
    in_bank = {normalise_text(r.instance) for r in bank.ratings(profile)}
    seen, out = set(), []
    for rec in records:
        key = normalise_text(rec["input"])
        if key in in_bank or key in seen:
            continue
        seen.add(key)
        out.append(rec)
    random.Random(seed).shuffle(out)
    return out[:limit] if limit else out


def macro_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    labels = set(gold) | set(pred)
    f1s = []
    for lab in labels:
        tp = sum(1 for g, p in zip(gold, pred) if g == lab and p == lab)
        fp = sum(1 for g, p in zip(gold, pred) if g != lab and p == lab)
        fn = sum(1 for g, p in zip(gold, pred) if g == lab and p != lab)
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s)) if f1s else 0.0


@dataclass
class _Acc:
    preds: list[str] = field(default_factory=list)
    passes: int = 0
    seconds: float = 0.0


def evaluate(engine, queries: Sequence[dict], strategies: Iterable[str], *,
             variants: Sequence[str] = VARIANTS,
             progress: Callable[[int, int], None] | None = None, cancel=None,
             checkpoint: Callable[[list[dict], int], None] | None = None,
             checkpoint_every: int = 25, logreg: bool = True,
             timing: dict | None = None) -> list[dict]:
    """Rows {"strategy", "memory", "accuracy", "macro_f1", "passes_per_query", "seconds_per_query"}.

    Per query, the strategies share a prompt cache (vanilla's prompt scored once serves vanilla,
    consistent and feedback), and each strategy's pass serves all its memory variants; the
    passes and seconds in a row are still what that strategy + variant costs on its own.
    """
    strategies = list(strategies)
    responses = set(engine.responses)
    bad = sorted({q["label"] for q in queries} - responses)
    if bad:
        raise ValueError(f"labels not in the profile's response set: {', '.join(bad[:10])}")
    gold = [q["label"] for q in queries]
    engine.warm_up(cancel)      # calibration and the embedder load once, outside the timings
    loop_start = time.perf_counter()
    acc: dict[tuple[str, str], _Acc] = {(s, v): _Acc() for s in strategies for v in variants}
    acc[("knn", "none")] = _Acc()
    # The paper rule's re-choice prompt lists only C(y'): a different prefix, so scoring it right
    # after a query would evict the shared fixed part from the backend's KV cache and the next
    # query would pay for its whole prompt again. Re-choices are run in batches instead.
    pending: list[tuple] = []

    def flush() -> None:
        for s, v, outcome, shared in pending:
            trace = engine.apply_memory(outcome, v, cancel, shared=shared)
            a = acc[(s, v)]
            a.preds.append(trace.chosen)
            a.passes += trace.passes
            a.seconds += trace.seconds
        pending.clear()

    for i, q in enumerate(queries):
        shared: dict = {}
        for s in strategies:
            outcome = engine.model_pass(q["input"], cancel, strategy=s, shared=shared)
            for v in variants:
                if v == "paper":
                    pending.append((s, v, outcome, shared))
                    continue
                trace = engine.apply_memory(outcome, v, cancel, shared=shared)
                a = acc[(s, v)]
                a.preds.append(trace.chosen)
                a.passes += trace.passes
                a.seconds += trace.seconds
        t0 = time.perf_counter()
        y_nn, _ = engine.nearest_response(q["input"], cached=False)   # kNN pays its embedding
        a = acc[("knn", "none")]
        a.preds.append(y_nn or "")
        a.seconds += time.perf_counter() - t0
        if progress:
            progress(i + 1, len(queries))
        if (i + 1) % checkpoint_every == 0 or i + 1 == len(queries):
            flush()
        if checkpoint and (i + 1) % checkpoint_every == 0 and i + 1 < len(queries):
            checkpoint(_rows(acc, gold[:i + 1]), i + 1)    # a long run stopped early keeps its rows
    if logreg:
        acc[("logreg", "none")] = _logreg_baseline(engine, queries)
    if timing is not None:   # the whole loop: every strategy, variant and baseline, per query
        timing["wall_seconds_per_query"] = (time.perf_counter() - loop_start) / max(len(queries), 1)
    return _rows(acc, gold)


def _logreg_baseline(engine, queries: Sequence[dict]) -> _Acc:
    """Logistic regression on the bank's embeddings (the reviewer's baseline next to 1-NN); its
    seconds are the training and the queries' embeddings, spread over the queries."""
    from cm_desktop.cm.baselines import logreg_predict

    a = _Acc()
    t0 = time.perf_counter()
    index = engine.index
    if len(index) == 0:
        a.preds = ["" for _ in queries]
        return a
    vecs = index.embedder.encode([q["input"] for q in queries])
    pred = logreg_predict(index.embeddings, index.user_idx, vecs, len(engine.responses))
    a.preds = [engine.responses[i] for i in pred]
    a.seconds = time.perf_counter() - t0
    return a


def _rows(acc: dict, gold: Sequence[str]) -> list[dict]:
    n = max(len(gold), 1)
    rows = []
    for (s, v), a in acc.items():
        preds = a.preds[:len(gold)]
        rows.append({"strategy": s, "memory": v,
                     "accuracy": float(np.mean([p == g for p, g in zip(preds, gold)])) if gold else 0.0,
                     "macro_f1": macro_f1(gold, preds),
                     "passes_per_query": a.passes / n,
                     "seconds_per_query": a.seconds / n})
    return rows


def format_table(rows: Sequence[dict]) -> str:
    head = f"{'strategy':<11}{'memory':<10}{'accuracy':>9}{'macro-F1':>10}{'passes/q':>10}{'s/q':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['strategy']:<11}{r['memory']:<10}{r['accuracy']:>9.3f}{r['macro_f1']:>10.3f}"
                     f"{r['passes_per_query']:>10.2f}{r['seconds_per_query']:>8.3f}")
    return "\n".join(lines)
