"""The evidence rule (`marginalize.evidence_posteriors`) for the app's engine: its parts that
depend on the bank alone, built once per bank refresh.

- the parameters, tuned by leave-one-out over the bank (`evaluate.tune_evidence`; test data never
  seen);
- the response-text prior r(y|x): the embedding of each response's own text ("card_arrival" ->
  "card arrival"), so a response nobody has rated yet can still be chosen where x is near it;
- the bank's classifier b(y|x): logistic regression on the rated instances' embeddings, cross-fitted
  on the bank for tuning, fitted on the whole bank for a new query.

`cm curve` measures the same rule (method `cm-evidence`) on simulated users.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from cm_desktop.cm import marginalize as mz
from cm_desktop.cm.retrieval import Neighbour, RatingIndex


def response_text(response: str) -> str:
    """What a response's own text says, for the embedding prior ("card_arrival" -> "card arrival")."""
    return " ".join(response.replace("_", " ").replace(".", " ").split())


class EvidenceRule:
    """The tuned evidence rule for one bank state (rebuild it after the bank changes)."""

    def __init__(self, index: RatingIndex, counts: np.ndarray, cancel=None) -> None:
        # late imports: evaluate imports the engine, baselines imports scikit-learn
        from cm_desktop.cm.baselines import fit_logreg, logreg_out_of_fold
        from cm_desktop.cm.evaluate import tune_evidence

        self.counts = counts
        self.index = index
        r = len(index.responses)
        self.response_vecs = index.embedder.encode([response_text(y) for y in index.responses])
        self.classify: Callable[[np.ndarray], np.ndarray] | None = None
        prior_bank = estimate_bank = None
        if len(index):
            prior_bank = mz.response_prior(index.embeddings, self.response_vecs)
            if len(index) >= 5:
                estimate_bank = logreg_out_of_fold(index.embeddings, index.user_idx, r)
        self.params = tune_evidence(index, counts, None, prior_bank, estimate_bank,
                                    cancel=cancel).params
        if self.params.bank_weight and len(index):
            self.classify = fit_logreg(index.embeddings, index.user_idx, r)

    @property
    def k(self) -> int:
        return self.params.k

    def posterior(self, p: np.ndarray, query_vec: np.ndarray,
                  neighbours: Sequence[Neighbour]) -> np.ndarray:
        """q(y|x) for one query, normalised to sum to 1 (argmax = the answer)."""
        idx = np.array([nb.index for nb in neighbours][:self.params.k], dtype=int)
        sims = np.array([nb.similarity for nb in neighbours][:self.params.k], dtype=np.float64)
        qv = np.asarray(query_vec, dtype=np.float64)[None, :]
        prior = mz.response_prior(qv, self.response_vecs)
        estimate = self.classify(qv) if self.classify is not None else None
        q = mz.evidence_posteriors(np.asarray(p, dtype=np.float64)[None, :], self.counts,
                                   self.index.model_idx[idx][None, :],
                                   self.index.user_idx[idx][None, :], sims[None, :],
                                   self.params, prior, bank_estimate=estimate)[0]
        return q / max(float(q.sum()), 1e-300)
