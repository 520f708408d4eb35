"""The evidence rule's bank classifier and the model's distribution among its features."""

from __future__ import annotations

import numpy as np

from cm_desktop.cm import evaluate as ev
from cm_desktop.cm import evidence
from cm_desktop.cm.retrieval import RatingIndex


def test_model_features_are_centred_log_p_rows_of_the_given_norm():
    p = np.array([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3], [0.0, 1.0, 0.0]])
    f = evidence.model_features(p, 0.5)
    np.testing.assert_allclose(f.sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(f[[0, 2]], axis=1), 0.5)
    np.testing.assert_array_equal(f[1], 0.0)            # a uniform p says nothing
    assert np.isfinite(f).all()                         # a one-hot p (no stored distribution)
    assert f[0].argmax() == 0 and f[2].argmax() == 1
    assert evidence.classifier_features(np.ones((3, 2)), p, 0.0).shape == (3, 2)
    assert evidence.classifier_features(np.ones((3, 2)), p, 0.5).shape == (3, 5)


def _simulated_bank(n: int, seed: int):
    """Ratings whose embeddings carry nothing, and a user who means what the model ranks last:
    what the user meant depends on the model's whole distribution at x, not on its answer y'
    alone (given y' = "a", the user means "b" or "c"), so the counts T(y|y') cannot tell."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(3), size=n)
    vecs = rng.normal(size=(n, 16))
    meant = np.argmin(p, axis=1)
    return p, vecs, meant


def _agreement_on_new_queries(monkeypatch, feature_weight: float) -> tuple[float, np.ndarray]:
    """The bank classifier's agreement with the simulated user on 400 new queries, after 300
    ratings, and what those users meant."""
    monkeypatch.setattr(evidence, "MODEL_FEATURE_WEIGHT", feature_weight)
    monkeypatch.setitem(ev.EVIDENCE_GRID, "bank_weight", (1.0,))
    p, vecs, meant = _simulated_bank(300, seed=0)
    index = RatingIndex.from_arrays(["a", "b", "c"], [f"q{i}" for i in range(300)],
                                    p.argmax(axis=1), meant, vecs, None, model_p=p)
    rule = evidence.EvidenceRule(index, ev.counts_matrix(index))
    assert rule.params.model_features == feature_weight
    p_new, vecs_new, meant_new = _simulated_bank(400, seed=1)
    v = vecs_new / np.linalg.norm(vecs_new, axis=1, keepdims=True)
    return float(np.mean(rule.bank_estimate(v, p_new).argmax(axis=1) == meant_new)), p_new, \
        meant_new


def test_with_enough_ratings_the_bank_classifier_learns_from_the_model_distribution(monkeypatch):
    agreement, p_new, meant_new = _agreement_on_new_queries(monkeypatch,
                                                            evidence.MODEL_FEATURE_WEIGHT)
    assert agreement >= 0.9 > float(np.mean(p_new.argmax(axis=1) == meant_new))


def test_without_model_features_the_classifier_sees_only_the_embeddings(monkeypatch):
    # the embeddings carry nothing: the classifier can do little better than the most frequent
    # answer
    agreement, _, meant_new = _agreement_on_new_queries(monkeypatch, 0.0)
    assert agreement <= np.bincount(meant_new, minlength=3).max() / len(meant_new) + 0.05


def test_below_the_ratings_per_response_the_classifier_has_no_model_features(monkeypatch):
    monkeypatch.setitem(ev.EVIDENCE_GRID, "bank_weight", (1.0,))
    n = evidence.MODEL_FEATURES_PER_RESPONSE * 3 - 1
    p, vecs, meant = _simulated_bank(n, seed=2)
    index = RatingIndex.from_arrays(["a", "b", "c"], [f"q{i}" for i in range(n)],
                                    p.argmax(axis=1), meant, vecs, None, model_p=p)
    rule = evidence.EvidenceRule(index, ev.counts_matrix(index))
    assert rule.params.bank_weight == 1.0 and rule.params.model_features == 0.0


def test_ratings_without_the_models_distribution_neither_count_nor_teach_it(monkeypatch):
    # a rating stored without its distribution has a one-hot y' in its place, which is not what
    # the model said: it neither counts toward the ratings the features need nor trains them
    monkeypatch.setitem(ev.EVIDENCE_GRID, "bank_weight", (1.0,))
    p, vecs, meant = _simulated_bank(300, seed=0)
    texts = [f"q{i}" for i in range(300)]
    none_stored = RatingIndex.from_arrays(["a", "b", "c"], texts, p.argmax(axis=1), meant, vecs,
                                          None)
    rule = evidence.EvidenceRule(none_stored, ev.counts_matrix(none_stored))
    assert not rule.known.any() and rule.params.model_features == 0.0

    stored = np.arange(300) < 200
    mixed_p = np.where(stored[:, None], p, np.eye(3)[p.argmax(axis=1)])
    mixed = RatingIndex.from_arrays(["a", "b", "c"], texts, p.argmax(axis=1), meant, vecs, None,
                                    model_p=mixed_p, model_p_stored=stored)
    rule = evidence.EvidenceRule(mixed, ev.counts_matrix(mixed))
    assert rule.params.model_features == evidence.MODEL_FEATURE_WEIGHT
    np.testing.assert_array_equal(rule.known, stored)
    features = evidence.classifier_features(mixed.embeddings, mixed.model_p,
                                            evidence.MODEL_FEATURE_WEIGHT, rule.known)
    assert not features[~stored, 16:].any() and features[stored, 16:].any(axis=1).all()
    p_new, vecs_new, meant_new = _simulated_bank(400, seed=1)
    v = vecs_new / np.linalg.norm(vecs_new, axis=1, keepdims=True)
    assert np.mean(rule.bank_estimate(v, p_new).argmax(axis=1) == meant_new) >= 0.9
