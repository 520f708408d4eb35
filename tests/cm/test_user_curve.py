"""The user's own learning curve (cm/user_curve.py) on a real SQLite bank: each point is held out,
matches the live engine's decision where both tune the same way, and is computed once."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bank_store.rebase import is_current
from cm_desktop.cm import user_curve as uc
from cm_desktop.cm.engine import CMEngine, ModelOutcome
from cm_desktop.cm.retrieval import HashedNgramEmbedder

RESPONSES = ["alarm", "music", "weather"]
# The model (y') says "alarm" to everything but the last; what the user meant depends on the words.
RATED = [
    ("play some jazz music", "alarm", "music"),
    ("wake me up at six", "alarm", "alarm"),
    ("play my jazz playlist", "alarm", "music"),
    ("will it rain today", "alarm", "weather"),
    ("play music by queen", "alarm", "music"),
    ("is it going to rain today", "alarm", "weather"),
    ("what is the weather like", "weather", "weather"),
]
TOPICS = [("play some {} music", "music"), ("will it rain on {}", "weather"),
          ("wake me up at {}", "alarm")]
WORDS = ["monday", "tuesday", "friday", "six", "seven", "jazz", "rock", "noon", "dawn", "sunday"]


def _many(n: int, seed: int = 0):
    """n ratings on three topics, the model always saying "alarm"."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        template, meant = TOPICS[int(rng.integers(3))]
        out.append((template.format(WORDS[int(rng.integers(len(WORDS)))]) + f" {i}", "alarm", meant))
    return out


@pytest.fixture
def embedder():
    return HashedNgramEmbedder()


def _bank_with(bank, ratings, profile="p"):
    bank.create_profile(profile, RESPONSES)
    for x, ym, yu in ratings:
        bank.add_rating(profile, x, ym, yu)
    return bank


def test_each_point_is_the_engines_decision_on_the_bank_before_that_rating(bank, tmp_path, embedder):
    from bank_store import DiscrepancyBank

    _bank_with(bank, RATED)
    curve = uc.compute_user_curve(bank, "p", embedder)
    assert len(curve) == len(RATED) and curve.computed == len(RATED) and curve.reused == 0
    ratings = bank.ratings("p")
    # Up to 6 earlier ratings the curve and the engine tune on the same bank (nothing below 5,
    # then all 5), so CM's held-out decision must be exactly the engine's with p = one-hot(y').
    for k in range(6):
        earlier = DiscrepancyBank(tmp_path / f"before-{k}.sqlite3")
        earlier.create_profile("p", RESPONSES)
        earlier.add_ratings("p", ratings[:k])
        engine = CMEngine(None, earlier, "p", variant="evidence", embedder=embedder, calibrate=False)
        x, ym, yu = RATED[k]
        p = np.zeros(len(RESPONSES))
        p[RESPONSES.index(ym)] = 1.0
        trace = engine.apply_memory(ModelOutcome(x, "vanilla", p, RESPONSES.index(ym), 0, 0.0,
                                                 None, None), "evidence")
        assert curve.model_agrees[k] == (ym == yu)
        assert curve.cm_agrees[k] == (trace.chosen == yu), k
        earlier.close()
    # the first rating has an empty bank: CM keeps the model's (wrong) answer
    assert not curve.cm_agrees[0]


def test_cm_learns_what_the_model_gets_wrong(bank, embedder):
    _bank_with(bank, _many(120))
    curve = uc.compute_user_curve(bank, "p", embedder)
    _, model, cm = curve.windowed()
    third = len(_many(120)) // 3
    assert float(np.mean(curve.model_agrees)) < 0.5      # "alarm" is right a third of the time
    assert float(np.mean(curve.cm_agrees[-third:])) > float(np.mean(curve.cm_agrees[:third]))
    assert cm[-1] > model[-1]


def test_reopening_reads_the_cache_and_evaluates_only_new_ratings(bank, tmp_path, embedder):
    from bank_store import DiscrepancyBank

    ratings = _many(40, seed=1)
    _bank_with(bank, ratings[:30])
    first = uc.compute_user_curve(bank, "p", embedder)
    assert (first.reused, first.computed) == (0, 30)
    again = uc.compute_user_curve(bank, "p", embedder)
    assert (again.reused, again.computed) == (30, 0)
    for x, ym, yu in ratings[30:]:
        bank.add_rating("p", x, ym, yu)
    grown = uc.compute_user_curve(bank, "p", embedder)
    assert (grown.reused, grown.computed) == (30, 10)
    # the same ratings evaluated from scratch in another bank give the same curve
    fresh = DiscrepancyBank(tmp_path / "fresh.sqlite3")
    fresh.create_profile("p", RESPONSES)
    fresh.add_ratings("p", bank.ratings("p"))
    scratch = uc.compute_user_curve(fresh, "p", embedder)
    assert scratch.computed == 40
    assert np.array_equal(scratch.cm_agrees, grown.cm_agrees)
    assert np.array_equal(scratch.model_agrees, grown.model_agrees)
    fresh.close()


def test_removing_a_rating_from_the_middle_recomputes_from_there_only(bank, embedder):
    _bank_with(bank, _many(20, seed=2))
    uc.compute_user_curve(bank, "p", embedder)
    middle = bank.ratings("p")[12]
    bank.remove_rating("p", middle.id)
    after = uc.compute_user_curve(bank, "p", embedder)
    assert (after.reused, after.computed) == (12, 7)
    assert after.positions == list(range(19))


def test_only_the_users_own_ratings_are_points_but_every_rating_is_bank(bank, embedder):
    bank.create_profile("p", RESPONSES)
    for x, ym, yu in RATED[:4]:
        bank.add_rating("p", x, ym, yu, source="imported")
    for x, ym, yu in RATED[4:]:
        bank.add_rating("p", x, ym, yu)
    curve = uc.compute_user_curve(bank, "p", embedder)
    assert curve.positions == [4, 5, 6] and curve.total_ratings == len(RATED)
    # "play music by queen": the imported jazz ratings said "music" for this y'
    assert curve.cm_agrees[0] and not curve.model_agrees[0]


def test_windowed_agreement_is_the_trailing_mean():
    flags = np.array([1, 0, 1, 1, 0, 0, 1, 1, 1, 1], dtype=bool)
    curve = uc.UserCurve(positions=list(range(10)), model_agrees=~flags, cm_agrees=flags)
    x, model, cm = curve.windowed(window=4)
    assert list(x) == list(range(1, 11))
    for i in range(10):
        lo = max(0, i + 1 - 4)
        assert cm[i] == pytest.approx(flags[lo:i + 1].mean())
        assert model[i] == pytest.approx((~flags)[lo:i + 1].mean())


def _curve(flags) -> uc.UserCurve:
    flags = np.asarray(flags, dtype=bool)
    return uc.UserCurve(positions=list(range(len(flags))), model_agrees=np.zeros(len(flags), bool),
                        cm_agrees=flags)


def test_flattened_means_the_last_50_changed_cm_within_its_noise():
    rng = np.random.default_rng(3)
    assert not _curve(np.ones(99)).flattened()                 # too few to tell
    assert _curve(np.ones(100)).flattened()                     # perfect and staying so
    rising = np.concatenate([rng.random(50) < 0.3, rng.random(50) < 0.9])
    assert not _curve(rising).flattened()
    falling = rising[::-1]
    assert not _curve(falling).flattened()
    steady = np.tile([True, True, True, False], 40)             # 75% in every window
    gain, noise = _curve(steady).recent_change()
    assert gain == pytest.approx(0.0, abs=0.03) and noise > 0.05
    assert _curve(steady).flattened()


def test_current_mask_is_the_banks_rule():
    fps = np.array([None, None, "m1", "m2"], dtype=object)
    srcs = np.array(["rated", "imported", "rated", "imported"], dtype=object)
    for fp in (None, "m1", "m2", "other"):
        expected = [is_current(f, s, fp) for f, s in zip(fps, srcs)]
        assert list(uc._current_mask(fps, srcs, fp)) == expected


def test_tuning_checkpoints_double_from_five():
    assert [uc._tune_checkpoint(n) for n in (0, 4, 5, 9, 10, 19, 20, 39, 40, 1000)] == \
        [0, 0, 5, 5, 10, 10, 20, 20, 40, 640]


def test_the_id_chain_changes_exactly_from_the_first_difference():
    a = uc.id_chain(["r1", "r2", "r3", "r4"])
    b = uc.id_chain(["r1", "r2", "rX", "r4"])
    assert a[:2] == b[:2] and all(x != y for x, y in itertools.islice(zip(a, b), 2, None))


def test_a_rebased_twin_is_no_new_point_of_the_users_curve(bank, embedder):
    bank.create_profile("p", RESPONSES)
    for x, ym, yu in RATED[:4]:
        bank.add_rating("p", x, ym, yu, fingerprint="model-a")
    # what a rebase stores: the new model's y' for the same (x, y), source kept
    for x, _, yu in RATED[:4]:
        bank.add_rating("p", x, "music", yu, fingerprint="model-b")
    bank.add_rating("p", *RATED[4], fingerprint="model-b")
    curve = uc.compute_user_curve(bank, "p", embedder)
    assert curve.positions == [0, 1, 2, 3, 8]


@pytest.mark.slow
def test_from_the_tuning_point_a_point_is_the_engines_decision_through_the_tuned_encoder(
        bank, tmp_path):
    from bank_store import DiscrepancyBank
    from cm_desktop.cm import encoder_tuning as et
    from cm_desktop.cm.retrieval import MiniLMEmbedder, RatingIndex, torch_available

    if not torch_available():
        pytest.skip("MiniLM needs torch")
    minilm = MiniLMEmbedder()
    _bank_with(bank, _many(22, seed=3))
    index = RatingIndex(bank, "p", minilm)
    rules: dict = {}
    results = uc.evaluate_positions(index, [5, 20, 21], tuned=rules)
    assert 5 < et.TUNE_PER_RESPONSE * len(RESPONSES)
    assert rules[5].index.embedder is minilm                  # below the tuning point: frozen
    assert isinstance(rules[20].index.embedder, et.TunedEmbedder)
    assert rules[20].index.embedder.n_ratings == 20
    # the engine on the first 20 ratings tunes the same encoder and decides rating 20 the same way
    ratings = bank.ratings("p")
    earlier = DiscrepancyBank(tmp_path / "before-20.sqlite3")
    earlier.create_profile("p", RESPONSES)
    earlier.add_ratings("p", ratings[:20])
    engine = CMEngine(None, earlier, "p", variant="evidence", embedder=minilm, calibrate=False)
    rt = ratings[20]
    p = np.zeros(len(RESPONSES))
    p[RESPONSES.index(rt.model_response)] = 1.0
    trace = engine.apply_memory(ModelOutcome(rt.instance, "vanilla", p,
                                             RESPONSES.index(rt.model_response), 0, 0.0, None,
                                             None), "evidence")
    assert trace.encoder == "tuned on 20 of your ratings"
    assert engine.evidence_rule().index.embedder.name == rules[20].index.embedder.name
    assert results[1][1] == (trace.chosen == rt.user_response)
    earlier.close()
