"""The bank across models: which ratings' y' belong to the current model, rebasing (kept old
ratings, new ones beside them, resumable), and the import note for another model's file."""

from __future__ import annotations

from collections import Counter

import pytest
from bank_helpers import SMALL_R

from bank_store.formats import export_native, read_bank_file
from bank_store.rebase import (UNKNOWN_MODEL, file_model_note, is_current, model_counts,
                               pending, rebase)

OLD = "llama_cpp:old-model.gguf:100:aaaaaaaaaaaa"
NEW = "llama_cpp:new-model.gguf:200:bbbbbbbbbbbb"


@pytest.fixture
def profile(bank):
    bank.create_profile("p", SMALL_R)
    rows = [("where is my card", SMALL_R[0], SMALL_R[1]),
            ("card still not here", SMALL_R[0], SMALL_R[0]),
            ("I lost my card", SMALL_R[1], SMALL_R[1]),
            ("I lost my card", SMALL_R[1], SMALL_R[1]),          # rated twice: both count
            ("refund please", SMALL_R[2], SMALL_R[3])]
    for x, y_model, y in rows:
        bank.add_rating("p", x, y_model, y, fingerprint=OLD)
    # a paper file's rating: no instance, no fingerprint
    bank.add_ratings("p", [{"instance": "", "model_response": SMALL_R[0],
                            "user_response": SMALL_R[2], "source": "imported"}])
    return "p"


def xy(ratings):
    return Counter((r.instance, r.user_response) for r in ratings if r.instance)


def test_whose_y_prime_is_decided_in_one_rule():
    assert is_current(NEW, "rated", NEW)
    assert not is_current(OLD, "rated", NEW)
    assert not is_current(None, "imported", NEW)         # the paper's files
    assert is_current(None, "rated", NEW)                # made here before fingerprints
    assert is_current(OLD, "rated", None)                # no model known: all count


def test_counts_by_model(bank, profile):
    c = model_counts(bank, profile, NEW)
    assert (c.current, c.other) == (0, 6)
    assert c.by_model == {OLD: 5, UNKNOWN_MODEL: 1}
    assert c.to_rebase == 5 and c.without_instance == 1


def test_rebase_gives_every_rated_instance_a_new_y_prime_and_keeps_every_x_y(bank, profile):
    before = bank.ratings(profile)
    asked = []

    def respond(x):
        asked.append(x)
        return SMALL_R[3]

    report = rebase(bank, profile, NEW, respond, strategy="vanilla")
    after = bank.ratings(profile)
    assert set(r.id for r in before) <= set(r.id for r in after)          # old ones kept
    new = [r for r in after if r.fingerprint == NEW]
    assert len(new) == 5 and report.added == 5 and report.remaining == 0
    assert xy(new) == xy(before)                                          # every (x, y) kept
    assert all(r.model_response == SMALL_R[3] for r in new)
    assert sorted(asked) == sorted({r.instance for r in before if r.instance})  # once each
    assert report.without_instance == 1
    assert pending(bank, profile, NEW) == []
    # nothing left to do: a second run asks nothing and adds nothing
    again = rebase(bank, profile, NEW, lambda x: pytest.fail("asked again"))
    assert again.added == 0 and len(bank.ratings(profile)) == len(after)


def test_a_stopped_rebase_resumes_where_it_stopped(bank, profile):
    calls = []

    def respond(x):
        calls.append(x)
        return SMALL_R[0]

    first = rebase(bank, profile, NEW, respond, should_stop=lambda: len(calls) >= 2, batch=1)
    assert first.cancelled and first.instances == 2 and first.remaining > 0
    second = rebase(bank, profile, NEW, respond)
    assert not second.cancelled and second.remaining == 0
    assert len(calls) == 4                                  # 4 distinct instances, each once
    new = [r for r in bank.ratings(profile) if r.fingerprint == NEW]
    assert xy(new) == xy([r for r in bank.ratings(profile) if r.fingerprint == OLD])


def test_answers_already_given_survive_a_failing_model(bank, profile):
    calls = []

    def respond(x):
        calls.append(x)
        if len(calls) == 3:
            raise RuntimeError("the model went away")
        return SMALL_R[0]

    with pytest.raises(RuntimeError):
        rebase(bank, profile, NEW, respond)
    assert len([r for r in bank.ratings(profile) if r.fingerprint == NEW]) >= 2


def test_the_import_note_says_when_a_file_is_another_models(tmp_path, bank, profile):
    paper = tmp_path / "paper.json"
    paper.write_text('{"card arrival": ["card arrival", "lost or stolen card"]}', encoding="utf-8")
    note = file_model_note(read_bank_file(paper), NEW)
    assert "paper file" in note and "cannot be rebased" in note
    native = tmp_path / "bank.json"
    export_native(bank, profile, native)
    note = file_model_note(read_bank_file(native), NEW)
    assert "6 ratings were made with another model" in note and OLD in note
    assert "5 have a query" in note
    assert file_model_note(read_bank_file(native), OLD).startswith("1 of the file's 6")


def test_a_rebase_stores_the_distribution_the_model_gives_with_its_answer(bank, profile):
    import numpy as np

    p = [0.1] * len(SMALL_R)
    p[2] = 1.0 - 0.1 * (len(SMALL_R) - 1)
    report = rebase(bank, profile, NEW, lambda x: (SMALL_R[2], p))
    new = {r.id for r in bank.ratings(profile) if r.fingerprint == NEW}
    ids, stored = bank.model_distributions(profile)
    assert report.added == len(new) == 5 and set(ids) == new
    np.testing.assert_allclose(stored, [p] * 5, rtol=1e-6)


def test_a_distribution_that_does_not_fit_writes_none_of_its_batch(bank, profile):
    from bank_store import DistributionError

    before = bank.ratings(profile)
    with pytest.raises(DistributionError):
        rebase(bank, profile, NEW, lambda x: (SMALL_R[0], [1.0]))
    assert bank.ratings(profile) == before
