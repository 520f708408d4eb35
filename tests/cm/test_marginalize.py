"""The CM rules on hand-built banks where the right answer is known (explicit p vectors, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from cm_desktop.cm import marginalize as mz

R = ["alarm", "audio", "iot", "music"]
A, AU, IOT, MU = range(4)


def counts_from(pairs):
    c = np.zeros((len(R), len(R)))
    for ym, yu, n in pairs:
        c[R.index(ym), R.index(yu)] += n
    return c


def test_model_distribution_is_a_softmax_and_length_normalisation_changes_it():
    p = mz.model_distribution([-1.0, -2.0, -3.0])
    assert p.sum() == pytest.approx(1.0)
    assert p[0] / p[1] == pytest.approx(np.e)
    # a long candidate with a low total but a high per-token likelihood wins only when normalised
    raw = mz.model_distribution([-4.0, -3.0], [8, 1])
    norm = mz.model_distribution([-4.0, -3.0], [8, 1], length_normalise=True)
    assert raw.argmax() == 1 and norm.argmax() == 0
    with pytest.raises(ValueError):
        mz.model_distribution([])
    with pytest.raises(ValueError):
        mz.model_distribution([-1.0], length_normalise=True)


def test_paper_rule_unknown_single_and_rechoose():
    assert mz.paper_rule([], "iot") == ("unknown", ["iot"])
    assert mz.paper_rule([("music", 3)], "iot") == ("single", ["music"])
    rule, names = mz.paper_rule([("music", 3), ("audio", 1)], "iot")
    assert rule == "rechoose" and names == ["music", "audio"]


def test_marginal_transition_rows_and_identity_for_unseen():
    c = counts_from([("iot", "music", 3), ("iot", "iot", 1)])
    t = mz.marginal_transition(c, alpha=1.0)
    assert np.allclose(t.sum(axis=1), 1.0)
    assert t[IOT, MU] == pytest.approx(3 / 5)
    assert t[IOT, IOT] == pytest.approx(2 / 5)
    assert np.allclose(t[A], np.eye(4)[A])          # alarm never rated: keep the model
    t0 = mz.marginal_transition(np.zeros((4, 4)), alpha=0.0)
    assert np.allclose(t0, np.eye(4))
    with pytest.raises(ValueError):
        mz.marginal_transition(np.zeros((3, 4)), 1.0)


def test_marginal_posterior_corrects_a_systematic_confusion():
    # the model says "iot" but this user always meant "music" by such messages
    c = counts_from([("iot", "music", 5)])
    p = np.array([0.1, 0.1, 0.6, 0.2])
    q = mz.marginal_posterior(p, mz.marginal_transition(c, alpha=1.0))
    assert R[int(q.argmax())] == "music"
    # with a strong prior toward identity the model's answer survives
    q_strong = mz.marginal_posterior(p, mz.marginal_transition(c, alpha=100.0))
    assert R[int(q_strong.argmax())] == "iot"


def test_instance_transition_follows_the_neighbours_not_the_global_counts():
    # globally y'=iot means iot (4 ratings) but the near neighbours say iot -> audio here
    c = counts_from([("iot", "iot", 4), ("iot", "audio", 2)])
    p = np.eye(4)[IOT]
    nb_model, nb_user = [IOT, IOT], [AU, AU]
    t = mz.instance_transition(c, nb_model, nb_user, np.array([1.0, 1.0]), alpha=0.0, beta=10.0)
    assert R[int((p @ t).argmax())] == "audio"
    t_global = mz.marginal_transition(c, 0.0)
    assert R[int((p @ t_global).argmax())] == "iot"


def test_kernel_weights_favour_the_most_similar():
    w = mz.kernel_weights(np.array([0.9, 0.8, 0.1]), tau=0.05)
    assert w[0] == pytest.approx(1.0) and w[0] > w[1] > w[2]
    assert w[1] == pytest.approx(np.exp(-0.1 / 0.05))
    with pytest.raises(ValueError):
        mz.kernel_weights(np.array([0.5]), tau=0.0)


def test_instance_vote_and_agreement():
    v = mz.instance_vote([AU, AU, MU], np.array([1.0, 1.0, 2.0]), 4)
    assert v[AU] == pytest.approx(0.5) and v[MU] == pytest.approx(0.5) and v.sum() == pytest.approx(1)
    assert mz.instance_vote([], np.array([]), 4).sum() == 0
    assert mz.agreement(counts_from([("iot", "iot", 3), ("iot", "music", 1)])) == pytest.approx(0.75)
    assert mz.agreement(np.zeros((4, 4))) == 0.0


def test_instance_posterior_ignores_an_unreliable_model():
    # the model never agreed with this user (a = 0): the neighbours' vote decides
    c = counts_from([("alarm", "music", 3), ("alarm", "audio", 3)])
    p = np.eye(4)[A]
    params = mz.CMParams(alpha=1.0, beta=0.0, tau=0.1, k=3, gamma=1.0)
    final = mz.instance_posterior(p, c, [A, A, A], [AU, AU, MU], np.array([0.9, 0.85, 0.2]), params)
    assert R[int(final.argmax())] == "audio"


def test_instance_posterior_trusts_a_reliable_model_against_weak_neighbours():
    # the model agreed 19 times out of 20, the one neighbour is far and says otherwise
    c = counts_from([("iot", "iot", 19), ("alarm", "audio", 1)])
    p = np.array([0.05, 0.05, 0.85, 0.05])
    params = mz.CMParams(alpha=1.0, beta=0.0, tau=0.1, k=1, gamma=1.0)
    final = mz.instance_posterior(p, c, [A], [AU], np.array([0.2]), params)
    assert R[int(final.argmax())] == "iot"


def test_instance_posterior_without_neighbours_is_the_marginal():
    c = counts_from([("iot", "music", 5)])
    p = np.array([0.1, 0.1, 0.6, 0.2])
    params = mz.CMParams(alpha=1.0)
    got = mz.instance_posterior(p, c, [], [], np.array([]), params)
    assert np.allclose(got, mz.marginal_posterior(p, mz.marginal_transition(c, 1.0)))


def test_majority_vote_and_tie_break_by_summed_scores():
    d1, d2, d3 = np.array([.5, .3, .1, .1]), np.array([.2, .6, .1, .1]), np.array([.1, .2, .6, .1])
    assert mz.majority_vote([0, 1, 1], [d1, d2, d3]) == 1
    # three different answers: the summed distribution decides (audio: 1.1)
    assert mz.majority_vote([0, 1, 2], [d1, d2, d3]) == 1
    assert mz.argmax_with_ties(np.array([1, 1, 0]), np.array([0.1, 0.9, 5])) == 1
