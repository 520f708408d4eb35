"""Learning-curve simulation, the evidence rule and the coverage order, on hand-built arrays
(numpy only: no model, no embedder; the CLI test runs them on the real model)."""

from __future__ import annotations

import numpy as np
import pytest

from cm_desktop.cm import coverage, curve
from cm_desktop.cm import marginalize as mz
from cm_desktop.cm.evaluate import tune_evidence
from cm_desktop.cm.retrieval import RatingIndex


def _records(n, labels=("a", "b", "c")):
    return [{"input": f"query number {i}", "label": labels[i % len(labels)]} for i in range(n)]


def test_split_one_file_gives_disjoint_halves_by_seed():
    recs = _records(40) + [{"input": "Query  NUMBER 3", "label": "a"}]   # a duplicate, by case
    pool, test = curve.split_records(recs, None, limit=None, test_limit=None, seed=1)
    keys = lambda rs: {r["input"].lower() for r in rs}
    assert len(pool) == len(test) == 20
    assert not keys(pool) & keys(test)
    again = curve.split_records(recs, None, limit=None, test_limit=None, seed=1)
    other = curve.split_records(recs, None, limit=None, test_limit=None, seed=2)
    assert again == (pool, test) and other != (pool, test)


def test_split_two_files_drops_test_inputs_in_the_pool_or_the_bank():
    pool_recs = _records(10)
    test_recs = _records(14)      # the first 10 inputs are also pool inputs
    pool, test = curve.split_records(pool_recs, test_recs, limit=5, test_limit=None, seed=0,
                                     exclude=["QUERY number 12"])
    assert len(pool) == 5
    assert sorted(r["input"] for r in test) == ["query number 10", "query number 11",
                                                 "query number 13"]


def test_parse_sizes_rejects_nonsense():
    assert curve.parse_sizes("25,10,25") == [10, 25]
    for bad in ("", "0,5", "ten", ",".join(str(i) for i in range(1, 30))):
        with pytest.raises(ValueError):
            curve.parse_sizes(bad)


def _one_query(p, nb_user, nb_sims, nb_model=None, counts=None, **kw):
    r = len(p)
    counts = np.zeros((r, r)) if counts is None else counts
    nb_user = np.array([nb_user])
    nb_model = np.zeros_like(nb_user) if nb_model is None else np.array([nb_model])
    q = mz.evidence_posteriors(np.array([p]), counts, nb_model, nb_user, np.array([nb_sims]),
                               mz.EvidenceParams(**kw))
    return int(q[0].argmax())


def test_a_far_rating_does_not_override_the_model_but_a_near_one_does():
    # "how do I top up with apple pay": the model leans to response 0; the only rated query
    # says response 2. At cosine 0.23 it is no evidence about this query; at 0.95 it is.
    p = [0.5, 0.3, 0.2]
    assert _one_query(p, [2], [0.23], strength=0.3, tau=0.1) == 0
    assert _one_query(p, [2], [0.95], strength=0.3, tau=0.1) == 2
    # the kernel-normalised instance vote of the older rule lets the far one win
    lam_rule = mz.instance_posterior(np.array(p), np.zeros((3, 3)), [0], [2], np.array([0.23]),
                                     mz.CMParams(gamma=1.0))
    assert int(lam_rule.argmax()) == 2


def test_more_near_evidence_outweighs_a_stronger_model():
    p = [0.9, 0.05, 0.05]
    one = _one_query(p, [1], [0.9], strength=1.0, tau=0.1)
    many = _one_query(p, [1, 1, 1, 1, 1], [0.97] * 5, strength=1.0, tau=0.1)
    assert (one, many) == (0, 1)


def test_evidence_leave_one_out_equals_a_bank_without_that_rating():
    rng = np.random.default_rng(3)
    r, n = 5, 30
    model, user = rng.integers(r, size=n), rng.integers(r, size=n)
    counts = np.zeros((r, r))
    np.add.at(counts, (model, user), 1.0)
    p = rng.dirichlet(np.ones(r), size=n)
    nb_model, nb_user = rng.integers(r, size=(n, 4)), rng.integers(r, size=(n, 4))
    nb_sims = np.sort(rng.uniform(0.2, 0.9, size=(n, 4)), axis=1)[:, ::-1]
    params = mz.EvidenceParams(strength=0.7, tau=0.2, k=4, beta=5.0)
    loo = mz.evidence_posteriors(p, counts, nb_model, nb_user, nb_sims, params,
                                 held_out=(model, user))
    for i in range(n):
        without = counts.copy()
        without[model[i], user[i]] -= 1
        alone = mz.evidence_posteriors(p[i:i + 1], without, nb_model[i:i + 1], nb_user[i:i + 1],
                                       nb_sims[i:i + 1], params)
        np.testing.assert_allclose(loo[i], alone[0], rtol=1e-9, atol=1e-12)


def test_evidence_tuning_on_a_bank_where_the_model_is_right_keeps_the_model():
    # the model's y' always equals the user's y, the neighbours are random: leave-one-out must
    # prefer a strong model (its answer wins on every held-out rating)
    rng = np.random.default_rng(0)
    r, n = 6, 60
    y = rng.integers(r, size=n)
    e = rng.normal(size=(n, 8))
    index = RatingIndex.from_arrays([f"r{i}" for i in range(r)], [f"x{i}" for i in range(n)],
                                    y, y, e, embedder=None)
    counts = np.zeros((r, r))
    np.add.at(counts, (y, y), 1.0)
    res = tune_evidence(index, counts)
    assert res.loo_accuracy == 1.0 and res.n == n


def test_coverage_need_is_where_the_banks_classifier_hesitates():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(1)
    centres = np.eye(3, 8)
    bank_users = np.repeat(np.arange(3), 6)
    bank = centres[bank_users] + 0.05 * rng.normal(size=(18, 8))
    queries = np.vstack([centres[0], (centres[0] + centres[1]) / 2, centres[2]])
    need, between = coverage.coverage_doubt(bank, bank_users, queries, None, 3)
    assert need.tolist() == coverage.coverage_needs(bank, bank_users, queries, None, 3).tolist()
    # between two answers' ratings the classifier hesitates; on one answer's ratings it does not
    assert need[1] > max(need[0], need[2]) and need[1] > 0.8 and max(need[0], need[2]) < 0.5
    assert ((0.0 <= need) & (need <= 1.0)).all()
    # the two answers it hesitates between, likeliest first
    assert sorted(between[1].tolist()) == [0, 1]
    assert between[0, 0] == 0 and between[2, 0] == 2
    # an empty bank knows nothing anywhere: every query equally needy, between no answers
    empty = coverage.coverage_doubt(bank[:0], bank_users[:0], queries, None, 3)
    assert empty.need.tolist() == [1.0] * 3 and (empty.between == -1).all()
    # a response nobody rated is a class through its own text: the classifier can answer it
    only_two = bank_users < 2
    with_texts = coverage.bank_classifier(bank[only_two], bank_users[only_two], centres, 3)
    without = coverage.bank_classifier(bank[only_two], bank_users[only_two], None, 3)
    assert with_texts(centres[2:]).argmax(axis=1).tolist() == [2]
    assert without(centres[2:])[0, 2] == 0.0


def _inputs(n_pool=120, n_test=60, r=5, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(r, 12))

    def make(n):
        y = rng.integers(r, size=n)
        e = centres[y] + 0.9 * rng.normal(size=(n, 12))
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        p = rng.dirichlet(np.ones(r), size=n)
        p[np.arange(n), (y + 1) % r] += 1.0          # a model that is consistently off by one
        return y, e, p / p.sum(axis=1, keepdims=True)

    yp, ep, pp = make(n_pool)
    yt, et, pt = make(n_test)
    return curve.CurveInputs([f"r{i}" for i in range(r)], [f"x{i}" for i in range(n_pool)],
                             yp, pp, ep, yt, pt, et)


def test_coverage_order_rates_distinct_pool_queries_and_window_one_is_pool_order():
    pytest.importorskip("sklearn")
    data = _inputs()
    orders = curve.rating_orders(data, ["random", "coverage"], 50, seed=4)
    for order in orders.values():
        assert len(order) == 50 and len(set(order.tolist())) == 50
    assert orders["coverage"].tolist() != orders["random"].tolist()
    # the two orders start from the same queue: the first rating is its head, and the second is
    # picked on an empty bank (the lag of one rating), so it is the queue's next
    assert orders["coverage"][:2].tolist() == orders["random"][:2].tolist()
    # window 1: the coverage order is the random queue itself
    same = curve.rating_orders(data, ["random", "coverage"], 50, seed=4, window=1)
    assert same["coverage"].tolist() == same["random"].tolist()
    one = coverage.coverage_order(data.e_pool, data.pool_users, None, 5, 10, window=1)
    assert one.tolist() == list(range(10))


def test_coverage_order_picks_the_neediest_by_the_bank_before_the_last_rating():
    pytest.importorskip("sklearn")
    data = _inputs()
    order = coverage.coverage_order(data.e_pool, data.pool_users, None, 5, 12)
    for j in range(2, 12):
        bank = order[:j - coverage.RANK_LAG]
        rest = np.setdiff1d(np.arange(len(data.pool_users)), order[:j])
        need = coverage.coverage_needs(data.e_pool[bank], data.pool_users[bank], data.e_pool[rest],
                                       None, 5)
        assert order[j] == rest[int(np.argmax(need))]


def test_curve_rows_cover_every_size_order_and_method():
    pytest.importorskip("sklearn")
    data = _inputs()
    res = curve.run_curve(data, [10, 40, 100, 1000], ["random", "coverage"], seed=0)
    assert res["skipped_sizes"] == [1000]
    keys = {(r["size"], r["order"], r["method"]) for r in res["rows"]}
    assert keys == {(s, o, m) for s in (10, 40, 100) for o in curve.ORDERS for m in curve.METHODS}
    model = {r["accuracy"] for r in res["rows"] if r["method"] == "model"}
    assert len(model) == 1                          # the model does not learn from the bank
    acc = {(r["size"], r["order"], r["method"]): r["accuracy"] for r in res["rows"]}
    # the bank corrects a model that is off by one: marginal CM learns the shift
    assert acc[(100, "random", "cm-marginal")] > acc[(100, "random", "model")] + 0.3
    assert all(0.0 <= r["macro_f1"] <= 1.0 for r in res["rows"])


def test_repeats_average_the_simulated_users_of_consecutive_seeds():
    pytest.importorskip("sklearn")
    data = _inputs()
    methods = ["knn", "cm-marginal"]
    many = curve.run_curve(data, [10, 40], ["random"], seed=3, methods=methods, repeats=3)
    singles = [curve.run_curve(data, [10, 40], ["random"], seed=s, methods=methods)
               for s in (3, 4, 5)]
    for row in many["rows"]:
        key = (row["size"], row["order"], row["method"])
        accs = [next(r["accuracy"] for r in single["rows"]
                     if (r["size"], r["order"], r["method"]) == key) for single in singles]
        assert row["repeats"] == 3
        assert row["accuracy"] == pytest.approx(np.mean(accs))
        assert row["accuracy_sd"] == pytest.approx(np.std(accs, ddof=1))
    assert any(r["accuracy_sd"] > 0 for r in many["rows"])     # the orders did differ
    with pytest.raises(ValueError):
        curve.run_curve(data, [10], ["random"], seed=0, methods=methods, repeats=0)
