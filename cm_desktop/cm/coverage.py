"""How unsure the bank is about a query: the coverage-driven order's one rule.

A query's need is one minus the margin of the bank's classifier there: logistic regression on the
rated instances' embeddings (the frozen encoder's, as stored), each response's own text counted as
`evidence.TEXT_WEIGHT` examples of it so that a response nobody has rated is still a class, and
the margin the gap between its two likeliest answers. The next query is the one where the bank
hesitates most between two answers (margin sampling): one rating there moves the boundary the
most. It needs no model pass, so the Rate view ranks its whole queue after every rating
(`CMEngine.coverage_doubt`, whose two answers the view's card names), and `cm curve --orders
coverage` simulates the same ranking over the whole remaining pool, so the curve measures the
app's own order.

Measured on the curves' pools (3 simulated users each, cm-evidence on the frozen encoder) against
the earlier rule (the y' never seen, the conflict among the bank's answers for y', the neighbours'
disagreement and the distance to the nearest rating, among the next 3 queries): see
benchmarks/RESULTS.md, "The coverage order as margin sampling".
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from cm_desktop.cancel import check

# The Rate view shows the next query as soon as one is rated, ranked by the bank as it was before
# that rating (the ranking that includes it runs after the rating's write): the simulated queue
# picks with the same lag of one rating.
RANK_LAG = 1
# At most this many queued queries are ranked after a rating (the head of the queue); the rest
# keep their order. A fit and the predictions over banking77's 500-query pool took 0.15-0.2 s at
# 300-500 ratings (2 cores, busy).
RANK_LIMIT = 5000


def bank_classifier(bank_vecs: np.ndarray, bank_users: np.ndarray,
                    response_vecs: np.ndarray | None,
                    n_responses: int) -> Callable[[np.ndarray], np.ndarray]:
    """The bank's classifier the order ranks by: query vectors -> (n, |R|) probabilities
    (response_vecs None: the ratings alone)."""
    from cm_desktop.cm.baselines import fit_logreg
    from cm_desktop.cm.evidence import TEXT_WEIGHT

    texts = None if response_vecs is None else (np.asarray(response_vecs, dtype=np.float64),
                                                np.arange(n_responses), TEXT_WEIGHT)
    return fit_logreg(np.asarray(bank_vecs, dtype=np.float64), np.asarray(bank_users, dtype=int),
                      n_responses, always=texts)


class Doubt(NamedTuple):
    """The bank's doubt about each of n queries."""
    need: np.ndarray        # (n,) in 0..1, higher = the bank is less sure here
    between: np.ndarray     # (n, 2) its two likeliest responses' indices, likeliest first (-1: none)

    @classmethod
    def knowing_nothing(cls, n: int) -> "Doubt":
        """An empty bank's: need 1 everywhere, between nothing."""
        return cls(np.ones(n), np.full((n, 2), -1, dtype=int))


def coverage_doubt(bank_vecs: np.ndarray, bank_users: np.ndarray, query_vecs: np.ndarray,
                   response_vecs: np.ndarray | None, n_responses: int) -> Doubt:
    """need = 1 - (p1 - p2) of the bank's classifier on each query vector, and the two responses
    it hesitates between (an empty bank: need 1 everywhere, between nothing: it knows nothing)."""
    query_vecs = np.asarray(query_vecs, dtype=np.float64)
    if len(bank_users) == 0 or n_responses < 2:
        return Doubt.knowing_nothing(len(query_vecs))
    proba = bank_classifier(bank_vecs, bank_users, response_vecs, n_responses)(query_vecs)
    between = np.argsort(-proba, axis=1, kind="stable")[:, :2]
    top2 = np.take_along_axis(proba, between, axis=1)
    return Doubt(np.clip(1.0 - (top2[:, 0] - top2[:, 1]), 0.0, 1.0), between)


def coverage_needs(bank_vecs: np.ndarray, bank_users: np.ndarray, query_vecs: np.ndarray,
                   response_vecs: np.ndarray | None, n_responses: int) -> np.ndarray:
    """(n,) the need alone (`coverage_doubt`): what the order ranks by."""
    return coverage_doubt(bank_vecs, bank_users, query_vecs, response_vecs, n_responses).need


def coverage_order(vecs: np.ndarray, users: np.ndarray, response_vecs: np.ndarray | None,
                   n_responses: int, size: int, window: int | None = None,
                   first: int = 0, lag: int = RANK_LAG, cancel=None) -> np.ndarray:
    """The order a user following the coverage queue rates `size` of n pool queries.

    vecs: (n, d) the pool's embeddings; users each query's y. The remaining queries are ranked by
    `coverage_needs` on all ratings but the last `lag` ones (RANK_LAG: as the Rate view's queue)
    and the neediest is rated next (ties: the earliest in pool order). window=w ranks the next w
    remaining queries in pool order (the Rate view ranks RANK_LIMIT), None all of them. Starts
    with pool row `first` (an empty bank rates everything as equally unknown).
    """
    n = len(users)
    size = min(size, n)
    rated: list[int] = [first]
    remaining = np.ones(n, dtype=bool)
    remaining[first] = False
    while len(rated) < size:
        check(cancel)
        cand = np.flatnonzero(remaining)
        if window is not None:
            cand = cand[:window]
        bank = np.asarray(rated[:len(rated) - lag], dtype=int)
        need = coverage_needs(vecs[bank], users[bank], vecs[cand], response_vecs, n_responses)
        pick = int(cand[int(np.argmax(need))])
        rated.append(pick)
        remaining[pick] = False
    return np.asarray(rated)
