"""The baselines CM is measured against: nearest neighbour and logistic regression."""

from __future__ import annotations

import numpy as np
import pytest

from cm_desktop.cm import baselines

pytest.importorskip("sklearn")


def _clusters(n_per=20, r=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.eye(r, 8) * 3.0
    y = np.repeat(np.arange(r), n_per)
    x = centres[y] + rng.normal(scale=0.5, size=(len(y), 8))
    return x / np.linalg.norm(x, axis=1, keepdims=True), y


def test_logreg_and_nearest_neighbour_separate_clear_clusters():
    x, y = _clusters()
    xt, yt = _clusters(seed=1)
    assert np.mean(baselines.logreg_predict(x, y, xt, 3) == yt) > 0.9
    assert np.mean(baselines.nearest_neighbour_predict(x, y, xt) == yt) > 0.9


def test_logreg_gives_unrated_classes_no_probability_and_one_class_all_of_it():
    x, y = _clusters()
    proba = baselines.logreg_proba(x, y, x[:4], n_classes=5)
    assert proba.shape == (4, 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (proba[:, 3:] == 0).all()
    one = baselines.logreg_proba(x[:3], np.array([2, 2, 2]), x[:2], n_classes=4)
    assert one.tolist() == [[0, 0, 1, 0], [0, 0, 1, 0]]


def test_out_of_fold_probabilities_never_come_from_a_classifier_that_saw_the_row():
    # every row has its own label: a classifier that saw the row would put mass on its label,
    # one that did not cannot know it
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 6))
    y = np.arange(10)
    oof = baselines.logreg_out_of_fold(x, y, n_classes=10, folds=5)
    assert oof.shape == (10, 10)
    assert (oof[np.arange(10), y] == 0).all()
    with pytest.raises(ValueError):
        baselines.nearest_neighbour_predict(np.zeros((0, 6)), np.zeros(0, dtype=int), x)


def test_out_of_fold_keeps_the_always_rows_in_every_fold():
    # the same rows, each with its own label, given as `always` too: every fold's classifier has
    # seen a copy of each held-out row, so each row's own label now gets probability
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 6))
    y = np.arange(10)
    oof = baselines.logreg_out_of_fold(x, y, n_classes=11, folds=5, always=(x, y, 1.0))
    assert (oof[np.arange(10), y] > 0).all()
    assert (oof[:, 10] == 0).all()
    # each copy counting as 3 examples: the copy's label weighs more
    heavier = baselines.logreg_out_of_fold(x, y, n_classes=11, folds=5, always=(x, y, 3.0))
    assert (heavier[np.arange(10), y] > oof[np.arange(10), y]).all()
