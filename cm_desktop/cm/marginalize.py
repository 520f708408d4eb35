"""The CM decision rules as pure numpy functions: no model, no bank, no I/O.

Notation (docs/DESIGN): R the response set (indices 0..|R|-1), p(y'|x) the model's distribution,
counts[y', y] the bank's n(y', y). Every function takes explicit arrays so the rules can be
checked on hand-built banks where the right answer is known.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class CMParams:
    """The knobs of marginal and instance-dependent CM (tuned on the bank, never on test data).

    alpha: Dirichlet prior strength toward the identity (trust the model when the bank is silent).
    beta:  weight of the neighbours' (y', y) pairs against the global counts in T_x(y|y').
    tau:   kernel temperature: w_i = exp(cos(e, e_i) / tau).
    k:     how many nearest rated instances count.
    gamma: how fast the model earns weight against the instance vote as its agreement a grows:
           lambda = a ** gamma (gamma large -> the vote dominates unless the model is reliable).
    """

    alpha: float = 1.0
    beta: float = 5.0
    tau: float = 0.05
    k: int = 10
    gamma: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


def model_distribution(logprobs: Sequence[float], n_tokens: Sequence[int] | None = None,
                       length_normalise: bool = False) -> np.ndarray:
    """p(y'|x): softmax over R of the candidates' log-likelihoods (optionally per token)."""
    lp = np.asarray(logprobs, dtype=np.float64)
    if lp.ndim != 1 or lp.size == 0:
        raise ValueError("model_distribution needs a non-empty 1-D vector of log-probabilities")
    if length_normalise:
        if n_tokens is None:
            raise ValueError("length_normalise needs the candidates' token counts")
        lp = lp / np.maximum(np.asarray(n_tokens, dtype=np.float64), 1.0)
    lp = lp - lp.max()
    e = np.exp(lp)
    return e / e.sum()


def paper_rule(candidate_set: Sequence[tuple[str, int]], model_response: str) -> tuple[str, list[str]]:
    """The seed's "Memorable X" rule before any re-choice.

    Returns (rule, candidates): rule is "unknown" (keep y'), "single" (take candidates[0]) or
    "rechoose" (ask the model again among candidates).
    """
    names = [y for y, _ in candidate_set]
    if not names:
        return "unknown", [model_response]
    if len(names) == 1:
        return "single", names
    return "rechoose", names


def marginal_transition(counts: np.ndarray, alpha: float) -> np.ndarray:
    """T(y|y') = (n(y', y) + alpha [y = y']) / (n(y') + alpha); rows y', columns y.

    A row the bank never saw is the identity (alpha > 0) - the model is kept where nothing is known.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"counts must be a square |R| x |R| matrix, got shape {c.shape}")
    if alpha < 0:
        raise ValueError("alpha must be >= 0")
    t = c + alpha * np.eye(c.shape[0])
    row = t.sum(axis=1, keepdims=True)
    empty = row[:, 0] == 0
    t[empty] = np.eye(c.shape[0])[empty]   # alpha == 0 and unseen y': keep the model's answer
    row[empty] = 1.0
    return t / row


def marginal_posterior(p: np.ndarray, transition: np.ndarray) -> np.ndarray:
    """q(y|x) = sum_y' p(y'|x) T(y|y')."""
    return np.asarray(p, dtype=np.float64) @ transition


def kernel_weights(similarities: np.ndarray, tau: float) -> np.ndarray:
    """w_i = exp(cos_i / tau), scaled so the largest is 1 (the ratios are what matter)."""
    s = np.asarray(similarities, dtype=np.float64)
    if s.size == 0:
        return s
    if tau <= 0:
        raise ValueError("tau must be > 0")
    return np.exp((s - s.max()) / tau)


def instance_transition(counts: np.ndarray, neighbour_model: Sequence[int],
                        neighbour_user: Sequence[int], weights: np.ndarray,
                        alpha: float, beta: float,
                        neighbour_current: np.ndarray | None = None) -> np.ndarray:
    """T_x(y|y') proportional to n(y', y) + beta sum_i w_i [y'_i = y'][y_i = y] + alpha [y = y'].

    neighbour_model / neighbour_user are the response indices (y'_i, y_i) of the nearest rated
    instances; weights their kernel weights, normalised here to sum to 1 so beta is the number of
    "virtual ratings" the neighbourhood is worth. neighbour_current (bool per neighbour): only
    neighbours whose y' came from the current model add to the transition.
    """
    c = np.asarray(counts, dtype=np.float64).copy()
    w = np.asarray(weights, dtype=np.float64)
    if w.size:
        w = w / w.sum()
        if neighbour_current is not None:
            w = w * np.asarray(neighbour_current, dtype=np.float64)
        np.add.at(c, (np.asarray(neighbour_model, dtype=int), np.asarray(neighbour_user, dtype=int)),
                  beta * w)
    return marginal_transition(c, alpha)


def instance_vote(neighbour_user: Sequence[int], weights: np.ndarray, n_responses: int) -> np.ndarray:
    """v(y|x) = sum_i w_i [y_i = y] / sum_i w_i; all zeros with no neighbours."""
    v = np.zeros(n_responses, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0 or w.sum() <= 0:
        return v
    np.add.at(v, np.asarray(neighbour_user, dtype=int), w)
    return v / v.sum()


def agreement(counts: np.ndarray) -> float:
    """a = sum_y' n(y', y') / N: how often the model already says what this user means."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    return float(np.trace(c) / total) if total > 0 else 0.0


def model_weight(agreement_rate: float, gamma: float) -> float:
    """lambda = a ** gamma: a useless model (a near 0) gets almost no say against the instances."""
    return float(np.clip(agreement_rate, 0.0, 1.0) ** max(gamma, 0.0))


def instance_posterior(p: np.ndarray, counts: np.ndarray, neighbour_model: Sequence[int],
                       neighbour_user: Sequence[int], similarities: np.ndarray,
                       params: CMParams, neighbour_current: np.ndarray | None = None) -> np.ndarray:
    """The instance-dependent answer distribution: lambda q_x + (1 - lambda) v.

    q_x = p @ T_x (the model corrected by the bank and by what the neighbours' ratings say about
    this y'), v the neighbours' kernel vote, lambda = a ** gamma from the bank's agreement rate.
    With no neighbours (empty bank) this is the marginal posterior.
    """
    n = len(p)
    w = kernel_weights(similarities, params.tau)
    t_x = instance_transition(counts, neighbour_model, neighbour_user, w, params.alpha, params.beta,
                              neighbour_current)
    q_x = marginal_posterior(p, t_x)
    if w.size == 0:
        return q_x
    lam = model_weight(agreement(counts), params.gamma)
    return lam * q_x + (1.0 - lam) * instance_vote(neighbour_user, w, n)


def argmax_with_ties(scores: np.ndarray, tie_break: np.ndarray | None = None) -> int:
    """argmax; among exact ties the highest tie_break wins, then the lowest index (stable)."""
    s = np.asarray(scores, dtype=np.float64)
    best = np.flatnonzero(s >= s.max() - 1e-12)
    if len(best) > 1 and tie_break is not None:
        tb = np.asarray(tie_break, dtype=np.float64)[best]
        best = best[tb >= tb.max() - 1e-12]
    return int(best[0])


def majority_vote(choices: Sequence[int], distributions: Sequence[np.ndarray]) -> int:
    """Consistent: the response most strategies chose; ties broken by the summed probabilities."""
    n = len(distributions[0])
    votes = np.zeros(n)
    for c in choices:
        votes[c] += 1
    summed = np.sum(np.asarray(distributions, dtype=np.float64), axis=0)
    return argmax_with_ties(votes, summed)


# ---- evidence-weighted CM -----------------------------------------------------------------------
# The instance rule above normalises its kernel weights over the k nearest ratings, so one rated
# query at cosine 0.23 outvotes the model as firmly as one at 0.94 when it is the only neighbour.
# Here the weights are absolute: a rating at cosine s is worth exp(-(1 - s) / tau) of a rating of
# this very query, and the model's corrected distribution is worth `strength` such ratings. Where
# the bank holds little near this x the model decides; where it holds much, the bank does.
#
# In CM's terms the transition itself depends on x: T_x(y|y') proportional to
# strength * T(y|y') + sum_i kappa_i [y_i = y] + bank_weight * b(y|x), so that
# sum_y' p(y'|x) T_x(y|y') is the rule below (b: the bank's own estimate of what the user means
# at x, a linear classifier on the rated instances' embeddings, and optionally on the model's own
# distribution there, where one is given).


@dataclass(frozen=True)
class EvidenceParams:
    """strength: how many exact-match ratings the model's (corrected) distribution is worth.
    tau: how fast a rating's worth falls with distance. k: nearest ratings looked at.
    beta: weight of the neighbours' own (y', y) pairs in the transition (as in the instance rule).
    alpha: Dirichlet prior toward the identity in the transition.
    prior: share of the model distribution replaced by the similarity of x to each response's own
    text (a prior for responses nobody has rated yet; 0 = off).
    bank_weight: how many ratings the bank's classifier estimate b(y|x) is worth (0 = off).
    model_features: the weight of the model's distribution among that classifier's features
    (`evidence.model_features`; 0 = the embedding alone)."""

    strength: float = 0.3
    tau: float = 0.1
    k: int = 10
    beta: float = 0.0
    alpha: float = 1.0
    prior: float = 0.0
    bank_weight: float = 0.0
    model_features: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def response_prior(query_vecs: np.ndarray, response_vecs: np.ndarray, tau: float = 0.05) -> np.ndarray:
    """r(y|x) = softmax over R of cos(x, text of y) / tau; (n, |R|)."""
    s = np.asarray(query_vecs, dtype=np.float64) @ np.asarray(response_vecs, dtype=np.float64).T
    s = (s - s.max(axis=1, keepdims=True)) / tau
    e = np.exp(s)
    return e / e.sum(axis=1, keepdims=True)


def evidence_model_part(p: np.ndarray, counts: np.ndarray, nb_model: np.ndarray,
                        nb_user: np.ndarray, nb_sims: np.ndarray, params: EvidenceParams,
                        prior: np.ndarray | None = None, held_out: tuple | None = None) -> np.ndarray:
    """m(y|x) = sum_y' p(y'|x) T_x(y|y') for n queries, (n, |R|), rows summing to 1;
    T_x as in the instance rule (counts + beta-weighted neighbour pairs + alpha identity), then
    mixed with the response-text prior. held_out: (model_idx, user_idx) per row when each query is
    itself a rating to leave out of `counts` (the bank's leave-one-out)."""
    p = np.asarray(p, dtype=np.float64)
    n, r = p.shape
    c = np.asarray(counts, dtype=np.float64)
    k = min(params.k, nb_user.shape[1]) if nb_user.ndim == 2 else 0
    rows = np.repeat(np.arange(n), k)
    add_rs = np.zeros((n, r))
    if k and params.beta:
        sims = nb_sims[:, :k]
        w = np.exp((sims - sims[:, :1]) / max(params.tau, 1e-6))
        w = params.beta * w / w.sum(axis=1, keepdims=True)
        np.add.at(add_rs, (rows, nb_model[:, :k].ravel()), w.ravel())
    if held_out is not None:
        hm, hu = held_out
        np.add.at(add_rs, (np.arange(n), hm), -1.0)
    rs = c.sum(axis=1)[None, :] + params.alpha + add_rs
    empty = rs <= 1e-12
    scale = np.where(empty, 0.0, p / np.where(empty, 1.0, rs))
    m = scale @ (c + params.alpha * np.eye(r)) + np.where(empty, p, 0.0)
    if k and params.beta:
        contrib = scale[rows, nb_model[:, :k].ravel()] * w.ravel()
        np.add.at(m, (rows, nb_user[:, :k].ravel()), contrib)
    if held_out is not None:
        np.add.at(m, (np.arange(n), hu), -scale[np.arange(n), hm])
    m = np.clip(m, 0.0, None)
    m /= np.maximum(m.sum(axis=1, keepdims=True), 1e-300)
    if prior is not None and params.prior > 0:
        m = (1.0 - params.prior) * m + params.prior * prior
    return m


def evidence_combine(m: np.ndarray, nb_user: np.ndarray, nb_sims: np.ndarray,
                     params: EvidenceParams, bank_estimate: np.ndarray | None = None) -> np.ndarray:
    """q(y|x) proportional to strength * m + sum_i exp(-(1 - s_i)/tau) [y_i = y]
    + bank_weight * b(y|x); (n, |R|) scores, argmax = the answer."""
    n = len(m)
    q = params.strength * m
    k = min(params.k, nb_user.shape[1]) if nb_user.ndim == 2 else 0
    if k:
        kappa = np.exp(-(1.0 - nb_sims[:, :k]) / max(params.tau, 1e-6))
        np.add.at(q, (np.repeat(np.arange(n), k), nb_user[:, :k].ravel()), kappa.ravel())
    if bank_estimate is not None and params.bank_weight > 0:
        q = q + params.bank_weight * bank_estimate
    return q


def evidence_posteriors(p: np.ndarray, counts: np.ndarray, nb_model: np.ndarray,
                        nb_user: np.ndarray, nb_sims: np.ndarray, params: EvidenceParams,
                        prior: np.ndarray | None = None, held_out: tuple | None = None,
                        bank_estimate: np.ndarray | None = None) -> np.ndarray:
    """Evidence-weighted CM for n queries at once; (n, |R|) scores (argmax = the answer).

    p: (n, |R|) the model's distributions; nb_*: (n, k') the nearest ratings' y', y and cosines,
    best first (k' >= params.k, or fewer with a small bank); prior: (n, |R|) response_prior rows;
    bank_estimate: (n, |R|) the bank classifier's b(y|x)."""
    m = evidence_model_part(p, counts, nb_model, nb_user, nb_sims, params, prior, held_out)
    return evidence_combine(m, nb_user, nb_sims, params, bank_estimate)
