"""Retrieval, bank-only tuning and leave-one-out on a real SQLite bank (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from cm_desktop.cm import evaluate as ev
from cm_desktop.cm import strategies as st
from cm_desktop.cm.retrieval import HashedNgramEmbedder, RatingIndex, normalise_text

RESPONSES = ["alarm", "music", "weather"]

# The model (y') always says "alarm"; what the user meant depends on the words.
RATED = [
    ("wake me up at six", "alarm", "alarm"),
    ("set an alarm for seven", "alarm", "alarm"),
    ("wake me at eight tomorrow", "alarm", "alarm"),
    ("play some jazz music", "alarm", "music"),
    ("play my rock playlist", "alarm", "music"),
    ("play music by queen", "alarm", "music"),
    ("will it rain today", "alarm", "weather"),
    ("is it going to rain tomorrow", "alarm", "weather"),
    ("what is the weather like today", "alarm", "weather"),
    ("how is the weather tomorrow", "alarm", "weather"),
]


@pytest.fixture
def rated_bank(bank):
    bank.create_profile("p", RESPONSES)
    for x, ym, yu in RATED:
        bank.add_rating("p", x, ym, yu)
    return bank


def test_hashed_embedder_is_deterministic_normalised_and_similarity_aware():
    e = HashedNgramEmbedder()
    a, b, c = e.encode(["play some music", "play some music please", "will it rain"])
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(a, HashedNgramEmbedder().encode(["play some music"])[0])
    assert a @ b > a @ c


def test_rating_index_caches_embeddings_in_the_bank(rated_bank):
    emb = HashedNgramEmbedder()
    index = RatingIndex(rated_bank, "p", emb)
    assert len(index) == len(RATED)
    ids, vecs = rated_bank.embeddings("p", emb.name)
    assert sorted(ids) == sorted(r.id for r in rated_bank.ratings("p"))
    assert vecs.shape == (len(RATED), emb.dims)
    # a second index reads the cache: the same vectors, nothing re-embedded differently
    again = RatingIndex(rated_bank, "p", emb)
    assert np.allclose(again.embeddings, index.embeddings)
    nbs = index.nearest(index.encode_query("play jazz music"), 3)
    assert [index.instances[n.index] for n in nbs][0] == "play some jazz music"
    assert nbs[0].similarity >= nbs[1].similarity >= nbs[2].similarity
    assert index.nearest(index.encode_query("x"), 0) == []


def test_loo_agreement_model_vs_cm(rated_bank):
    got = ev.leave_one_out_agreement(rated_bank, "p", HashedNgramEmbedder())
    assert got["n"] == len(RATED)
    assert got["model"] == pytest.approx(0.3)          # alarm was right 3 times of 10
    assert got["cm"] >= 0.8                             # the instances tell the meanings apart


def test_loo_agreement_empty_profile(bank):
    bank.create_profile("empty", RESPONSES)
    assert ev.leave_one_out_agreement(bank, "empty", HashedNgramEmbedder()) == \
        {"n": 0, "model": 0.0, "cm": 0.0}


def test_tuned_rule_is_never_below_one_nn_on_the_bank(rated_bank):
    index = RatingIndex(rated_bank, "p", HashedNgramEmbedder())
    res = ev.tune_params(index, ev.counts_matrix(index))
    assert res.loo_accuracy >= res.knn_accuracy
    assert res.loo_accuracy >= res.model_accuracy


def test_held_out_queries_exclude_bank_inputs_and_duplicates(rated_bank):
    records = [{"input": "  Wake me UP at six ", "label": "alarm"},      # in the bank
               {"input": "snooze please", "label": "alarm"},
               {"input": "snooze  PLEASE", "label": "alarm"},            # duplicate
               {"input": "sunny?", "label": "weather"}]
    got = ev.held_out_queries(records, rated_bank, "p", None, seed=0)
    assert sorted(normalise_text(r["input"]) for r in got) == ["snooze please", "sunny?"]
    assert len(ev.held_out_queries(records, rated_bank, "p", 1, seed=0)) == 1


def test_macro_f1_known_value():
    gold = ["a", "a", "b", "b"]
    pred = ["a", "b", "b", "b"]
    # a: p=1 r=.5 f=2/3; b: p=2/3 r=1 f=.8
    assert ev.macro_f1(gold, pred) == pytest.approx((2 / 3 + 0.8) / 2)
    assert ev.macro_f1(["a"], ["a"]) == 1.0


def test_prompts_keep_the_fixed_part_first_and_candidates_end_the_answer():
    fixed = st.fixed_part(RESPONSES)
    prompts = [st.vanilla_prompt(RESPONSES, "q"),
               st.examples_prompt(RESPONSES, "q", [("x1", "music"), ("x2", "alarm")]),
               st.feedback_prompt(RESPONSES, "q", "alarm")]
    for p in prompts:
        assert p.startswith(fixed)
        assert p.rstrip().endswith(":")
    # the most similar example sits right before the query
    fot = prompts[1]
    assert fot.index("x2") < fot.index("x1") < fot.index("Message: q")
    # only a response that begins another one needs the end marker
    assert st.candidate_texts(["card arrival delayed", "card", "card arrival", "cards", "alarm"]) == \
        [" card arrival delayed", " card\n", " card arrival\n", " cards", " alarm"]
    # a multi-line query cannot break the layout
    assert "\n" not in st.vanilla_prompt(RESPONSES, "a\nb").split("Message: ")[1].split("\nCategory")[0]


def test_tuning_on_a_sample_in_chunks_matches_the_full_leave_one_out(rated_bank, monkeypatch):
    index = RatingIndex(rated_bank, "p", HashedNgramEmbedder())
    full = ev.tune_params(index, ev.counts_matrix(index))
    monkeypatch.setattr(ev, "_CHUNK", 3)                 # same rows, computed 3 at a time
    chunked = ev.tune_params(index, ev.counts_matrix(index))
    assert chunked.loo_accuracy == full.loo_accuracy and chunked.params == full.params
    monkeypatch.setattr(ev, "MAX_HELD_OUT", 4)           # a big bank: a fixed sample is held out
    rows = ev._loo_rows(index)
    assert len(rows) == 4 and len(set(rows)) == 4 and (rows == ev._loo_rows(index)).all()
    sampled = ev.tune_params(index, ev.counts_matrix(index))
    assert 0.0 <= sampled.loo_accuracy <= 1.0


def test_leave_one_out_agreement_can_be_cancelled(rated_bank):
    from cm_desktop.cancel import CancelToken, Cancelled

    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        ev.leave_one_out_agreement(rated_bank, "p", HashedNgramEmbedder(), cancel=token)


def test_the_index_reads_the_stored_model_distribution_and_falls_back_to_one_hot(bank):
    from cm_desktop.cm.retrieval import HashedNgramEmbedder, RatingIndex

    bank.create_profile("p", ["a", "b", "c"])
    kept = bank.add_rating("p", "play jazz", "a", "b")
    other = bank.add_rating("p", "rain today", "b", "c")
    none = bank.add_rating("p", "wake me", "c", "c")
    # `other`'s stored distribution is not for its y' ("b"): not what the model said then
    bank.set_model_distributions("p", {kept.id: [0.5, 0.3, 0.2], other.id: [0.9, 0.05, 0.05]})
    index = RatingIndex(bank, "p", HashedNgramEmbedder())
    rows = {rt.id: i for i, rt in enumerate(index.ratings)}
    np.testing.assert_allclose(index.model_p[rows[kept.id]], [0.5, 0.3, 0.2], rtol=1e-6)
    np.testing.assert_array_equal(index.model_p[rows[other.id]], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(index.model_p[rows[none.id]], [0.0, 0.0, 1.0])
    # which rows are what the model said, for the bank classifier's features
    assert [bool(index.model_p_stored[rows[r.id]]) for r in (kept, other, none)] == [
        True, False, False]


def test_the_evidence_rule_classifier_knows_a_response_nobody_rated_from_its_text(rated_bank,
                                                                                 monkeypatch):
    from cm_desktop.cm.evidence import EvidenceRule, response_text

    # "timer" is in the response set, never rated: the bank's classifier still has it as a
    # class, anchored at its own text
    rated_bank.create_profile("q", RESPONSES + ["timer"])
    for x, ym, yu in RATED:
        rated_bank.add_rating("q", x, ym, yu)
    embedder = HashedNgramEmbedder()
    index = RatingIndex(rated_bank, "q", embedder)
    monkeypatch.setitem(ev.EVIDENCE_GRID, "bank_weight", (1.0,))
    rule = EvidenceRule(index, ev.counts_matrix(index))
    assert rule.params.bank_weight == 1.0
    vecs = embedder.encode([response_text("timer"), "play some jazz music"])
    assert rule.bank_estimate(vecs, np.full((2, 4), 0.25)).argmax(axis=1).tolist() == [3, 1]


def _brute_force_leave_one_out(index, params):
    """Each rating's q(y|x) from a bank rebuilt without it: (accuracy, mean log-likelihood)."""
    from cm_desktop.cm import marginalize as mz

    hits, logs = [], []
    for i in range(len(index)):
        rest = np.arange(len(index)) != i
        held_out = RatingIndex.from_arrays(
            index.responses, [x for j, x in enumerate(index.instances) if j != i],
            index.model_idx[rest], index.user_idx[rest], index.embeddings[rest], None,
            model_p=index.model_p[rest])
        sims = held_out.embeddings @ index.embeddings[i]
        order = np.argsort(-sims, kind="stable")[:params.k]
        q = mz.evidence_posteriors(index.model_p[i][None, :], ev.counts_matrix(held_out),
                                   held_out.model_idx[order][None, :],
                                   held_out.user_idx[order][None, :], sims[order][None, :],
                                   params)[0]
        hits.append(q.argmax() == index.user_idx[i])
        logs.append(np.log(max(q[index.user_idx[i]] / q.sum(), ev.LIKELIHOOD_FLOOR)))
    return float(np.mean(hits)), float(np.mean(logs))


@pytest.mark.parametrize("unrated_responses", [0, 8])
def test_evidence_tuning_maximises_accuracy_or_with_few_ratings_the_likelihood(bank,
                                                                               unrated_responses):
    # 10 ratings over 3 responses (accuracy decides), or over 3 + 8 (fewer ratings than
    # responses: the held-out log-likelihood decides); checked against a leave-one-out that
    # rebuilds the bank without each rating
    import itertools

    from cm_desktop.cm import marginalize as mz

    responses = RESPONSES + [f"unused {i}" for i in range(unrated_responses)]
    bank.create_profile("p", responses)
    for x, ym, yu in RATED:
        bank.add_rating("p", x, ym, yu)
    index = RatingIndex(bank, "p", HashedNgramEmbedder())
    grid = {"strength": (3.0, 0.3, 0.01), "tau": (0.05, 0.2), "k": (10,), "beta": (0.0, 5.0),
            "prior": (0.0,), "bank_weight": (0.0,)}
    chosen = ev.tune_evidence(index, ev.counts_matrix(index), grid=grid).params
    scores = {}
    for strength, tau, beta in itertools.product(grid["strength"], grid["tau"], grid["beta"]):
        params = mz.EvidenceParams(strength=strength, tau=tau, k=10, beta=beta)
        scores[params] = _brute_force_leave_one_out(index, params)
    which = 1 if len(responses) > len(RATED) else 0
    best = max(s[which] for s in scores.values())
    assert scores[chosen][which] == pytest.approx(best)
