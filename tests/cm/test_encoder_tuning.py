"""The encoder tuned on the bank (cm.encoder_tuning) and the engine's use of it, on the real
packaged MiniLM and a real SQLite bank."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cm_desktop.cancel import CancelToken, Cancelled
from cm_desktop.cm import encoder_tuning as et
from cm_desktop.cm.engine import CMEngine, ModelOutcome
from cm_desktop.cm.retrieval import HashedNgramEmbedder, MiniLMEmbedder, torch_available

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not torch_available(), reason="MiniLM needs torch")]

RESPONSES = ["card_arrival", "exchange_rate", "lost_card"]
# Phrasings a frozen encoder mixes up across these meanings ("card", "rate", "where")
RATED = {
    "card_arrival": ["where is my card", "my card still has not come", "how long does the card take",
                     "when will the new card get here", "is my card in the post yet",
                     "card delivery is late"],
    "exchange_rate": ["what rate do you use for euros", "how much is a dollar in pounds",
                      "is the conversion rate fair", "where do you get the exchange rates",
                      "why was my currency rate so bad", "how is the rate for yen set"],
    "lost_card": ["i lost my card", "my card is gone, where did it go", "someone took my card",
                  "i cannot find my card anywhere", "my wallet with the card is missing",
                  "card was left in a shop"],
}
TEXTS = [t for r in RESPONSES for t in RATED[r]]
LABELS = np.array([i for i, r in enumerate(RESPONSES) for _ in RATED[r]])


@pytest.fixture(scope="module")
def base():
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def tuned(base):
    return et.tune_encoder(base, TEXTS, LABELS, len(RESPONSES))


def _separation(vecs: np.ndarray) -> float:
    """Mean cosine of two texts of one response minus that of two texts of different ones."""
    sims = vecs @ vecs.T
    same = LABELS[:, None] == LABELS[None, :]
    off = ~np.eye(len(LABELS), dtype=bool)
    return float(sims[same & off].mean() - sims[~same].mean())


def test_tuning_draws_a_response_s_queries_together_and_leaves_the_base_alone(base, tuned):
    before = base.encode(TEXTS)
    after = tuned.encode(TEXTS)
    assert after.shape == before.shape
    assert np.allclose(np.linalg.norm(after, axis=1), 1.0, atol=1e-5)
    # measured 0.319 -> 0.334 (8 steps on 18 ratings; deterministic, see the next test)
    assert _separation(after) > _separation(before) + 0.005
    assert np.allclose(base.encode(TEXTS), before, atol=1e-6)     # the frozen encoder unchanged
    assert tuned.name.startswith(base.name + "+tuned-") and tuned.name != base.name


def test_tuning_is_deterministic_and_named_by_what_it_was_trained_on(base, tuned):
    again = et.tune_encoder(base, TEXTS, LABELS, len(RESPONSES))
    assert again.name == tuned.name
    assert np.allclose(again.encode(TEXTS), tuned.encode(TEXTS), atol=1e-5)
    other = LABELS.copy()
    other[0] = 1
    assert et.training_key(TEXTS, other, 3) != et.training_key(TEXTS, LABELS, 3)


def test_a_tuning_serves_until_a_rating_is_removed_or_the_bank_grows_a_tenth(tuned):
    assert tuned.n_ratings == len(TEXTS) and tuned.still_fits(TEXTS)
    assert tuned.still_fits(TEXTS + ["a new one"])                 # 19 < 18 * 1.1
    assert not tuned.still_fits(TEXTS + ["one", "two"])            # 20 >= 19.8
    assert not tuned.still_fits(TEXTS[1:] + ["a replacement"])     # the first was removed


def test_tuning_stops_when_cancelled_and_refuses_bad_labels(base):
    token = CancelToken()
    steps = []

    def progress(step, total):
        steps.append((step, total))
        token.cancel()

    with pytest.raises(Cancelled):
        et.tune_encoder(base, TEXTS, LABELS, len(RESPONSES), cancel=token, progress=progress)
    assert steps == [(1, et.TUNE_EPOCHS * 2)]       # 18 texts: two batches an epoch
    with pytest.raises(ValueError, match="one label for each text"):
        et.tune_encoder(base, TEXTS, LABELS[:-1], len(RESPONSES))
    with pytest.raises(ValueError, match="outside the response set"):
        et.tune_encoder(base, TEXTS, LABELS + 1, len(RESPONSES))


def test_only_a_bank_with_enough_ratings_per_response_and_weights_to_tune_is_tuned(base):
    assert et.should_tune(base, et.TUNE_PER_RESPONSE * 3, 3)
    assert not et.should_tune(base, et.TUNE_PER_RESPONSE * 3 - 1, 3)
    assert not et.should_tune(base, 100, 1)                          # nothing to separate
    assert not et.should_tune(HashedNgramEmbedder(), 100, 3)         # no weights to tune


def _outcome(engine, text: str) -> ModelOutcome:
    p = np.full(len(RESPONSES), 1.0 / len(RESPONSES))
    return ModelOutcome(text, "vanilla", p, 0, 1, 0.0, None, None)


def test_the_engine_decides_through_the_tuned_encoder_and_tunes_again_only_when_needed(
        bank, base, monkeypatch):
    # a tuning point of 12 ratings, so that one rating more is under RETUNE_GROWTH's 10 %
    monkeypatch.setattr(et, "TUNE_PER_RESPONSE", 4)
    bank.create_profile("p", RESPONSES)
    rows = [(TEXTS[i], RESPONSES[LABELS[i]]) for i in np.argsort(np.arange(18) % 6, kind="stable")]
    gate = et.TUNE_PER_RESPONSE * len(RESPONSES)
    for text, label in rows[:gate - 1]:
        bank.add_rating("p", text, "card_arrival", label)
    engine = CMEngine(None, bank, "p", embedder=base, variant="evidence", calibrate=False)
    trace = engine.apply_memory(_outcome(engine, "my card has not arrived"), "evidence")
    assert trace.encoder == ""                        # 11 ratings: under the tuning point
    assert "encoder" not in trace.explain()

    tunings = []
    engine.tuning.progress = lambda step, steps: tunings.append(step) if step == 1 else None
    bank.add_rating("p", rows[gate - 1][0], "card_arrival", rows[gate - 1][1])
    engine.refresh()
    trace = engine.apply_memory(_outcome(engine, "my card has not arrived"), "evidence")
    assert trace.encoder == "tuned on 12 of your ratings" and len(tunings) == 1
    assert "Similarities read through the encoder tuned on 12 of your ratings" in trace.explain()
    rule_index = engine.evidence_rule().index
    assert not np.allclose(rule_index.embeddings, engine.index.embeddings, atol=1e-3)
    # the neighbours shown are the ones the tuned encoder finds
    nearest = rule_index.nearest(engine.query_vector("my card has not arrived", rule_index), 3)
    assert [x for x, _, _ in trace.neighbours][:3] == \
        [rule_index.instances[nb.index] for nb in nearest]

    bank.add_rating("p", rows[gate][0], "card_arrival", rows[gate][1])
    engine.refresh()                                  # 13 < 12 * 1.1: the tuning still serves
    assert engine.apply_memory(_outcome(engine, "x"), "evidence").encoder == \
        "tuned on 12 of your ratings" and len(tunings) == 1

    first = bank.ratings("p")[0]
    bank.remove_rating("p", first.id)                 # a tuned-on rating is gone: tune again
    engine.refresh()
    assert engine.apply_memory(_outcome(engine, "x"), "evidence").encoder == \
        "tuned on 12 of your ratings" and len(tunings) == 2
    assert first.instance not in engine.evidence_rule().index.embedder.instances


def test_a_tuning_is_kept_for_the_next_engine_and_a_damaged_one_is_tuned_again(bank, base,
                                                                                 tmp_path):
    bank.create_profile("p", RESPONSES)
    for text, label in zip(TEXTS, LABELS):
        bank.add_rating("p", text, "card_arrival", RESPONSES[label])
    folder = tmp_path / "tuned"

    def engine_with_counter():
        engine = CMEngine(None, bank, "p", embedder=base, variant="evidence", calibrate=False)
        engine.tuning.folder = folder
        steps = []
        engine.tuning.progress = lambda step, total: steps.append(step)
        return engine, steps

    first, first_steps = engine_with_counter()
    first_vecs = first.evidence_rule().index.embeddings
    kept = et.tuned_file(folder, bank.path, "p")
    assert first_steps and kept.is_file()
    assert kept.stat().st_mode & 0o777 == 0o600 and folder.stat().st_mode & 0o777 == 0o700

    second, second_steps = engine_with_counter()      # a restart, or a model switch
    assert np.allclose(second.evidence_rule().index.embeddings, first_vecs, atol=1e-6)
    assert second_steps == []
    assert second.evidence_rule().index.embedder.name == first.evidence_rule().index.embedder.name

    kept.write_bytes(b"not a tuning")
    third, third_steps = engine_with_counter()
    assert np.allclose(third.evidence_rule().index.embeddings, first_vecs, atol=1e-5)
    assert third_steps and et.load_tuned(base, RESPONSES, kept) is not None  # tuned again, kept
    assert et.load_tuned(base, RESPONSES[:2], kept) is None       # tuned for another response set
    assert et.tuned_file(folder, bank.path, "other") != kept


def test_a_deferred_engine_never_waits_and_never_reads_through_a_removed_rating(bank, base):
    # the app's engine: a decision uses what is valid now and leaves the tuning for idle time
    bank.create_profile("p", RESPONSES)
    for text, label in zip(TEXTS, LABELS):
        bank.add_rating("p", text, "card_arrival", RESPONSES[label])
    engine = CMEngine(None, bank, "p", embedder=base, variant="evidence", calibrate=False)
    engine.tuning.defer = True
    steps = []
    engine.tuning.progress = lambda step, total: steps.append(step)
    assert engine.apply_memory(_outcome(engine, "x"), "evidence").encoder == ""
    assert engine.tuning.due and steps == []
    assert engine.tune_now() and not engine.tuning.due and steps
    assert engine.apply_memory(_outcome(engine, "x"), "evidence").encoder == \
        "tuned on 18 of your ratings"
    assert not engine.tune_now()                       # nothing due

    for i in range(2):                                 # 20 >= 18 * 1.1: outgrown, still valid
        bank.add_rating("p", f"card number {i} never came", "card_arrival", "card_arrival")
    engine.refresh()
    assert engine.apply_memory(_outcome(engine, "x"), "evidence").encoder == \
        "tuned on 18 of your ratings" and engine.tuning.due

    bank.remove_rating("p", bank.ratings("p")[0].id)   # the tuning knew this one: not used again
    engine.refresh()
    assert engine.apply_memory(_outcome(engine, "x"), "evidence").encoder == ""
    assert engine.tune_now()
    assert engine.apply_memory(_outcome(engine, "x"), "evidence").encoder == \
        "tuned on 19 of your ratings"


def test_cm_curve_reads_through_the_encoder_tuned_on_each_simulated_bank(base, monkeypatch):
    from cm_desktop.cm import curve
    from cm_desktop.cm.baselines import logreg_predict
    from cm_desktop.cm.evidence import response_text

    tests = ["my card never showed up", "what is your euro rate", "my card was stolen"]
    vecs = base.encode(TEXTS + tests + [response_text(r) for r in RESPONSES])
    r = len(RESPONSES)
    data = curve.CurveInputs(
        responses=RESPONSES, pool_texts=TEXTS, pool_users=LABELS,
        p_pool=np.full((len(TEXTS), r), 1.0 / r), e_pool=vecs[:18],
        test_users=np.array([0, 1, 2]), p_test=np.full((3, r), 1.0 / r), e_test=vecs[18:21],
        e_responses=vecs[21:], test_texts=tests)
    methods = ["logreg", "logreg-tuned", "cm-evidence"]
    bank = np.arange(18)
    tunings = []
    real_tune = et.tune_encoder
    monkeypatch.setattr(et, "tune_encoder",
                        lambda *a, **kw: tunings.append(len(a[1])) or real_tune(*a, **kw))
    preds, tuned_params = curve.predict_at(data, bank, methods, embedder=base)
    assert tunings == [18]                      # one tuning serves both methods
    tuned = et.tune_encoder(base, TEXTS, LABELS, r)            # the same tuning (deterministic)
    expected = logreg_predict(tuned.encode(TEXTS), LABELS, tuned.encode(tests), r)
    assert np.array_equal(preds["logreg-tuned"], expected)
    assert "cm-evidence" in tuned_params
    # under TUNE_PER_RESPONSE ratings per response nothing is tuned: plain logistic regression
    small = np.arange(0, 18, 2)[:et.TUNE_PER_RESPONSE * r - 1]
    preds, _ = curve.predict_at(data, small, methods, embedder=base)
    # (the second tuning is this test's own, above): none for the small bank
    assert np.array_equal(preds["logreg-tuned"], preds["logreg"]) and tunings == [18, 18]
    with pytest.raises(ValueError, match="test queries' texts"):
        curve.predict_at(replace(data, test_texts=None), bank, methods, embedder=base)
