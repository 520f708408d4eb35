"""How little the bank knows about a query: the coverage-driven order's one rule.

`coverage_need` is what the Rate view's queue sorts by (through `CMEngine.coverage_need`) and what
`cm curve --orders coverage` simulates, so the curve measures the app's own order. It is the mean
of: y' never seen in the bank (when y' is known), conflict among the bank's answers for y', the
disagreement among the nearest rated instances, and the distance to the nearest one.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from cm_desktop.cm import marginalize as mz

# The nearest-rated vote's k and temperature, fixed rather than tuned on the bank: the Rate view's
# queue (`CMEngine.coverage_need`) and the simulated one (`cm curve --orders coverage`) then rank
# queries alike, and the queue costs no tuning after a rating.
QUEUE_PARAMS = mz.CMParams()

# The Rate view computes the proposals of the next QUEUE_WINDOW queries ahead, and its coverage
# order picks the neediest of them: `cm curve` simulates the same window unless told otherwise.
QUEUE_WINDOW = 3


def coverage_need(candidate_counts: Sequence[int] | None, vote: np.ndarray | None,
                  nearest_similarity: float | None) -> float:
    """0..1, higher = the bank knows less here.

    candidate_counts: the bank's counts n(y', y) for the model's y' (empty: y' never rated;
    None: y' unknown, e.g. no model pass yet). vote: the nearest rated instances' kernel vote
    over R, with nearest_similarity the best cosine (both None on an empty bank).
    """
    parts: list[float] = []
    if candidate_counts is not None:
        counts = [n for n in candidate_counts if n > 0]
        if not counts:
            parts.append(1.0)
        else:
            parts.extend([0.0, 1.0 - max(counts) / sum(counts)])
    if vote is None or nearest_similarity is None:
        parts.extend([1.0, 1.0])
    else:
        parts.append(1.0 - float(np.max(vote)))
        parts.append(float(np.clip(1.0 - nearest_similarity, 0.0, 1.0)))
    return float(np.mean(parts))


def coverage_needs(sims: np.ndarray, bank_users: np.ndarray, counts: np.ndarray,
                   model_idx: np.ndarray | None, params: mz.CMParams) -> np.ndarray:
    """`coverage_need` for many queries at once (the simulation's queue), same numbers.

    sims: (n_queries, bank size) cosines to the rated instances; bank_users their y;
    counts the bank's n(y', y); model_idx each query's y' (None: unknown).
    """
    n, b = sims.shape
    r = counts.shape[0]
    if b == 0:
        vote_part = np.ones(n)
        dist_part = np.ones(n)
    else:
        k = min(params.k, b)
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        w = np.exp((top_sims - top_sims.max(axis=1, keepdims=True)) / params.tau)
        vote = np.zeros((n, r))
        np.add.at(vote, (np.repeat(np.arange(n), k), bank_users[top].ravel()), w.ravel())
        vote /= vote.sum(axis=1, keepdims=True)
        vote_part = 1.0 - vote.max(axis=1)
        dist_part = np.clip(1.0 - top_sims.max(axis=1), 0.0, 1.0)
    if model_idx is None:
        return (vote_part + dist_part) / 2.0
    row = counts[model_idx]
    total = row.sum(axis=1)
    seen = total > 0
    conflict = 1.0 - row.max(axis=1) / np.maximum(total, 1.0)
    # y' seen: the parts are [0, conflict, vote, dist]; never seen: [1, vote, dist]
    return np.where(seen, (conflict + vote_part + dist_part) / 4.0,
                    (1.0 + vote_part + dist_part) / 3.0)


def coverage_order(sims: np.ndarray, users: np.ndarray, model_idx: np.ndarray, n_responses: int,
                   size: int, params: mz.CMParams, window: int | None = None,
                   first: int = 0) -> np.ndarray:
    """The order a user following the coverage queue rates `size` of n pool queries.

    sims: (n, n) cosines among the pool; users/model_idx each query's y and y'. window=None
    picks the neediest of all remaining queries; window=w the neediest of the next w in pool order
    (the Rate view's prefetched proposals). Starts with pool row `first` (an empty bank rates
    everything as equally unknown).
    """
    n = len(users)
    size = min(size, n)
    rated: list[int] = [first]
    remaining = np.ones(n, dtype=bool)
    remaining[first] = False
    counts = np.zeros((n_responses, n_responses))
    counts[model_idx[first], users[first]] += 1
    while len(rated) < size:
        cand = np.flatnonzero(remaining)
        if window is not None:
            cand = cand[:window]
        bank = np.asarray(rated)
        need = coverage_needs(sims[np.ix_(cand, bank)], users[bank], counts, model_idx[cand], params)
        pick = int(cand[int(np.argmax(need))])     # ties: the earliest in pool order
        rated.append(pick)
        remaining[pick] = False
        counts[model_idx[pick], users[pick]] += 1
    return np.asarray(rated)
