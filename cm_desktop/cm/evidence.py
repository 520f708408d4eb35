"""The evidence rule (`marginalize.evidence_posteriors`) for the app's engine: its parts that
depend on the bank alone, built once per bank refresh.

- the parameters, tuned by leave-one-out over the bank (`evaluate.tune_evidence`; test data never
  seen);
- the response-text prior r(y|x): the embedding of each response's own text ("card_arrival" ->
  "card arrival"), so a response nobody has rated yet can still be chosen where x is near it;
- the bank's classifier b(y|x): logistic regression on the rated instances' embeddings, each
  response's own text added as TEXT_WEIGHT examples of it (so a response rated rarely or never is
  still a class, and the text anchors it), and from MODEL_FEATURES_PER_RESPONSE ratings per
  response on the model's own distribution there too; cross-fitted on the bank for tuning, fitted
  on the whole bank for a new query.

`cm curve` measures the same rule (method `cm-evidence`) on simulated users.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from cm_desktop.cm import marginalize as mz
from cm_desktop.cm.retrieval import Neighbour, RatingIndex

# How many ratings of a response its own text counts as in the bank's classifier. Measured on the
# curves' pools (3 orders each), against 1: massive_scenario +3.5 points at 25 ratings and +2.5
# at 50, clinc +2.2 at 750, stackexchange +2.0 at 208, banking77 +0.5 at 500; at most 0.6 below
# anywhere (massive_scenario at 100). 10 gained more at 25 ratings and lost 0.8 at 576.
# Every response is then a class of every fit: with 1,000 responses (synthetic, 300 ratings) the
# classifier's six fits took 7.2 s (the five cross-fitted ones 0.5 s without the texts); with
# 150 responses 1.5 s.
TEXT_WEIGHT = 3.0

# With enough ratings the model's own distribution p(.|x) is a feature of the bank's classifier
# beside the embedding: the classifier then learns the instance-dependent transition from what the
# model said as well as from where x lies. Centred log p (floored so that a one-hot p, a rating
# stored without its distribution, stays finite), each row scaled to MODEL_FEATURE_WEIGHT (an
# embedding row has norm 1). Measured on the curves' pools (3 users each, random order), cm-evidence
# with 0.5 against none: massive_scenario +1.7 / +0.7 / +0.3 / +0.6 / +1.3 / +0.9 points at 100 /
# 200 / 300 / 400 / 500 / 576 ratings, clinc +0.8 at 750, banking77 +1.7 / -2.3 / +0.5 / +0.2 at
# 350 / 400 / 450 / 500 (a test query is 0.5 points there); 0.25 gained less on massive_scenario.
# Below 4 ratings per response the features cost: massive_scenario -2.3 at 25 and -1.4 at 50
# ratings (1.4 and 2.8 per response), clinc -1.1 at 500 (3.3). The build takes 15-25 % longer
# (banking77 500 ratings 0.86 s, clinc 750 ratings 1.6 s).
MODEL_FEATURE_WEIGHT = 0.5
MODEL_FEATURES_PER_RESPONSE = 4     # from this many ratings per response on average
LOG_P_FLOOR = 1e-6


def response_text(response: str) -> str:
    """What a response's own text says, for the embedding prior ("card_arrival" -> "card arrival")."""
    return " ".join(response.replace("_", " ").replace(".", " ").split())


def model_features(p: np.ndarray, weight: float) -> np.ndarray:
    """(n, |R|) the classifier's features from the model's distributions p (n, |R|): centred log p,
    each row scaled to norm `weight` (an embedding row has norm 1); a uniform p gives zeros."""
    lp = np.log(np.clip(np.asarray(p, dtype=np.float64), LOG_P_FLOOR, None))
    lp -= lp.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(lp, axis=1, keepdims=True)
    return weight * lp / np.where(norm > 1e-12, norm, 1.0)


def classifier_features(vecs: np.ndarray, p: np.ndarray, weight: float,
                        known: np.ndarray | None = None) -> np.ndarray:
    """The bank classifier's input for instances with embeddings vecs and model distributions p;
    known: (n,) False where p is not what this model gave (a rating stored without its
    distribution, or another model's): those rows get the features of a uniform p, zeros."""
    vecs = np.asarray(vecs, dtype=np.float64)
    if not weight:
        return vecs
    features = model_features(p, weight)
    if known is not None:
        features[~np.asarray(known, dtype=bool)] = 0.0
    return np.hstack([vecs, features])


class EvidenceRule:
    """The tuned evidence rule for one bank state (rebuild it after the bank changes).

    It tunes on the index's `model_p`: the model's p(y'|x) stored with each rating, one-hot y'
    where none was stored. response_vecs: the responses' text embeddings if already computed.
    Below MIN_EVIDENCE_TUNING ratings the defaults apply, and neither the response texts nor the
    classifier are computed (a new user's first queries pay for neither).
    """

    def __init__(self, index: RatingIndex, counts: np.ndarray, *,
                 response_vecs: np.ndarray | None = None, cancel=None) -> None:
        # late imports: evaluate imports the engine, baselines imports scikit-learn
        from cm_desktop.cm.baselines import fit_logreg, logreg_out_of_fold, one_blas_thread
        from cm_desktop.cm.evaluate import MIN_EVIDENCE_TUNING, tune_evidence

        self.counts = counts
        self.index = index
        self.response_vecs = response_vecs
        self._classifier: Callable[[np.ndarray], np.ndarray] | None = None
        r = len(index.responses)
        prior_bank = estimate_bank = training = texts = None
        # counted on the ratings whose distribution this model gave: a one-hot y' in its place
        # cost 1-3 points where the features helped with the real ones (banking77 at 400-500,
        # massive_scenario at 100-300 ratings)
        self.known = index.model_p_stored & index.current
        weight = (MODEL_FEATURE_WEIGHT
                  if int(self.known.sum()) >= MODEL_FEATURES_PER_RESPONSE * r else 0.0)
        if len(index) >= MIN_EVIDENCE_TUNING:
            if self.response_vecs is None and index.embedder is not None:
                self.response_vecs = index.embedder.encode([response_text(y)
                                                            for y in index.responses])
            if self.response_vecs is not None:
                prior_bank = mz.response_prior(index.embeddings, self.response_vecs)
            training, texts = self._training(weight), self._text_rows(weight)
            estimate_bank = logreg_out_of_fold(*training, r, always=texts)
        with one_blas_thread():     # small matrices: see one_blas_thread
            tuned = tune_evidence(index, counts, prior_bank, estimate_bank, cancel=cancel).params
        self.params = replace(tuned, model_features=weight if tuned.bank_weight else 0.0)
        if self.params.bank_weight:     # tuned above: there was an estimate to weigh
            self._classifier = fit_logreg(*training, r, always=texts)

    def _training(self, weight: float) -> tuple[np.ndarray, np.ndarray]:
        """The bank classifier's training rows: the rated instances and the user's answers."""
        return (classifier_features(self.index.embeddings, self.index.model_p, weight,
                                    self.known), self.index.user_idx)

    def _text_rows(self, weight: float):
        """Each response's own text as TEXT_WEIGHT examples of it, its model features those of a
        uniform p (a response's text says nothing of what the model answers); None without the
        texts' embeddings."""
        if self.response_vecs is None:
            return None
        r = len(self.index.responses)
        return (classifier_features(self.response_vecs, np.ones((r, r)), weight), np.arange(r),
                TEXT_WEIGHT)

    def bank_estimate(self, query_vecs: np.ndarray, p: np.ndarray,
                      known: np.ndarray | None = None) -> np.ndarray | None:
        """(n, |R|) the bank classifier's b(y|x) for n queries with embeddings query_vecs and the
        model's distributions p (known: as for classifier_features; default all); None where the
        tuned rule does not use it."""
        if self._classifier is None:
            return None
        return self._classifier(classifier_features(query_vecs, p, self.params.model_features,
                                                    known))

    @property
    def k(self) -> int:
        return self.params.k

    def posteriors(self, p: np.ndarray, query_vecs: np.ndarray | None, nb_idx: np.ndarray,
                   nb_sims: np.ndarray) -> np.ndarray:
        """(n, |R|) scores for n queries (argmax = the answer). nb_idx / nb_sims: (n, k') the
        nearest ratings (rows of the index) and their cosines, best first. query_vecs may be None
        when the rule uses neither the prior nor the classifier (a bank of no ratings)."""
        return self.scores(p, query_vecs, self.counts, self.index.model_idx[nb_idx],
                           self.index.user_idx[nb_idx], nb_sims)

    def scores(self, p: np.ndarray, query_vecs: np.ndarray | None, counts: np.ndarray,
               nb_model: np.ndarray, nb_user: np.ndarray, nb_sims: np.ndarray,
               known: np.ndarray | None = None) -> np.ndarray:
        """`posteriors` with the counts and the neighbours' (y', y) given: for a bank that has
        grown since the rule was tuned (the user's curve decides each rating on all the ratings
        before it, with the rule of its last checkpoint). known: which rows of p the model gave
        (default all; a one-hot y' stands in for the others)."""
        prior = None
        if self.params.prior > 0:
            prior = mz.response_prior(query_vecs, self.response_vecs)
        return mz.evidence_posteriors(p, counts, nb_model, nb_user, nb_sims, self.params, prior,
                                      bank_estimate=self.bank_estimate(query_vecs, p, known))

    def posterior(self, p: np.ndarray, query_vec: np.ndarray | None,
                  neighbours: Sequence[Neighbour]) -> np.ndarray:
        """q(y|x) for one query, normalised to sum to 1."""
        idx = np.array([nb.index for nb in neighbours][:self.params.k], dtype=int)
        sims = np.array([nb.similarity for nb in neighbours][:self.params.k], dtype=np.float64)
        qv = None if query_vec is None else np.asarray(query_vec, dtype=np.float64)[None, :]
        q = self.posteriors(np.asarray(p, dtype=np.float64)[None, :], qv, idx[None, :],
                            sims[None, :])[0]
        return q / max(float(q.sum()), 1e-300)
