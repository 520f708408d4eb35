"""Guidance on a real SQLite bank: set, read, clear, bulk, checks, and what profile changes do."""

from __future__ import annotations

import pytest

from bank_store import BankError, DiscrepancyBank
from bank_store.guidance import MAX_GUIDANCE_CHARS
from bank_helpers import SMALL_R

A, B, C, D, E, F = SMALL_R


def test_set_read_replace_and_clear_one_response(small_bank):
    assert small_bank.guidance("P") == {}
    assert small_bank.set_guidance("P", A, "Cards arrive in 3-5 working days.") is None
    assert small_bank.guidance_for("P", A) == "Cards arrive in 3-5 working days."
    # the old text comes back so a caller can undo
    assert small_bank.set_guidance("P", A, "  Offer tracking in the app.\n") == \
        "Cards arrive in 3-5 working days."
    assert small_bank.guidance("P") == {A: "Offer tracking in the app."}
    assert small_bank.set_guidance("P", A, None) == "Offer tracking in the app."
    assert small_bank.guidance_for("P", A) == ""
    small_bank.set_guidance("P", B, "x")
    small_bank.set_guidance("P", B, "   ")          # blank clears too
    assert small_bank.guidance("P") == {}


def test_response_is_matched_like_everywhere_and_stored_as_the_member(small_bank):
    small_bank.set_guidance("P", "  CARD   Arrival ", "three to five days")
    assert small_bank.guidance("P") == {A: "three to five days"}
    with pytest.raises(BankError, match="no response 'card lost'"):
        small_bank.set_guidance("P", "card lost", "text")


@pytest.mark.parametrize("bad, match", [
    (42, "must be text"),
    ("x" * (MAX_GUIDANCE_CHARS + 1), "at most"),
    ("bell\x07", "control characters"),
])
def test_bad_guidance_is_refused_and_changes_nothing(small_bank, bad, match):
    small_bank.set_guidance("P", A, "kept")
    with pytest.raises(BankError, match=match):
        small_bank.set_guidance("P", A, bad)
    assert small_bank.guidance("P") == {A: "kept"}


def test_bulk_set_is_all_or_nothing(small_bank):
    assert small_bank.set_guidances("P", {A: "a", B: "b"}) == 2
    assert small_bank.set_guidances("P", {A: "a", B: "b2", C: None}) == 1
    with pytest.raises(BankError, match="no response"):
        small_bank.set_guidances("P", {C: "c", "not a response": "x"})
    assert small_bank.guidance("P") == {A: "a", B: "b2"}


def test_guidance_is_per_profile_survives_reopen_and_goes_with_the_profile(tmp_path):
    path = tmp_path / "bank.sqlite3"
    bank = DiscrepancyBank(path)
    bank.create_profile("P", SMALL_R)
    bank.create_profile("Q", SMALL_R)
    bank.set_guidance("P", A, "for P")
    bank.close()
    bank = DiscrepancyBank(path)
    assert bank.guidance("P") == {A: "for P"} and bank.guidance("Q") == {}
    bank.delete_profile("P")
    bank.create_profile("P", SMALL_R)
    assert bank.guidance("P") == {}
    bank.close()


def test_a_response_dropped_from_the_set_hides_its_guidance_until_it_returns(small_bank):
    small_bank.set_guidance("P", F, "refunds take 5 days")
    small_bank.update_profile("P", responses=list(SMALL_R[:-1]))
    assert small_bank.guidance("P") == {}
    small_bank.update_profile("P", responses=list(SMALL_R))
    assert small_bank.guidance("P") == {F: "refunds take 5 days"}


# ---- the native bank file carries guidance (version 2) -------------------------------------------

def _exported(bank, tmp_path):
    from bank_store.formats import export_native

    path = tmp_path / "out.json"
    export_native(bank, "P", path)
    return path


def test_native_file_round_trips_guidance_into_a_new_profile(small_bank, tmp_path):
    import json

    from bank_store.formats import import_file

    small_bank.set_guidance("P", A, "three to five days")
    small_bank.add_rating("P", "where is my card", B, A)
    path = _exported(small_bank, tmp_path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["version"] >= 2 and doc["guidance"] == {A: "three to five days"}
    report = import_file(small_bank, path, "Copy")
    assert "Guidance: 1 responses" in report.summary()
    assert small_bank.guidance("Copy") == {A: "three to five days"}
    assert small_bank.rating_count("Copy") == 1


def test_merge_keeps_the_users_guidance_and_replace_takes_the_files(small_bank, tmp_path):
    from bank_store.formats import import_file

    small_bank.set_guidance("P", A, "from the file")
    small_bank.set_guidance("P", B, "also from the file")
    path = _exported(small_bank, tmp_path)
    small_bank.set_guidance("P", A, "mine")
    small_bank.set_guidance("P", B, None)
    import_file(small_bank, path, "P")
    assert small_bank.guidance("P") == {A: "mine", B: "also from the file"}
    import_file(small_bank, path, "P", mode="replace")
    assert small_bank.guidance("P") == {A: "from the file", B: "also from the file"}


def test_version_1_files_still_import_and_cannot_carry_guidance(small_bank, tmp_path):
    import json

    from bank_store.formats import import_file

    small_bank.add_rating("P", "where is my card", B, A)
    doc = json.loads(_exported(small_bank, tmp_path).read_text(encoding="utf-8"))
    doc["version"] = 1
    del doc["guidance"], doc["model_distributions"]       # what a version 1 file has not
    v1 = tmp_path / "v1.json"
    v1.write_text(json.dumps(doc), encoding="utf-8")
    assert import_file(small_bank, v1, "Old").added == 1
    doc["guidance"] = {A: "x"}
    v1.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(BankError, match="guidance"):
        import_file(small_bank, v1, "Older")


@pytest.mark.parametrize("guidance, where", [
    ({"not a response": "x"}, "not one of the file's responses"),
    ({A: 5}, "text"),
    ({A: "bell\x07"}, "control characters"),
    (["x"], "an object"),
])
def test_bad_guidance_in_a_file_names_where(small_bank, tmp_path, guidance, where):
    import json

    from bank_store.formats import import_file

    doc = json.loads(_exported(small_bank, tmp_path).read_text(encoding="utf-8"))
    doc["guidance"] = guidance
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(BankError, match=where) as info:
        import_file(small_bank, bad, "New")
    assert "guidance" in str(info.value)
    assert [p.name for p in small_bank.list_profiles()] == ["P"]
