"""Skipped queries and the curve cache kept per profile (migration 0004), on a real SQLite bank."""

from __future__ import annotations

import pytest

from bank_store import BankError, DiscrepancyBank
from bank_store.rate_state import CurveRow

from bank_helpers import SMALL_R


def test_skips_are_kept_per_profile_in_skip_order_across_reopening(tmp_path):
    path = tmp_path / "bank.sqlite3"
    bank = DiscrepancyBank(path)
    bank.create_profile("P", SMALL_R)
    bank.create_profile("Q", SMALL_R)
    assert bank.skip_query("P", "Where is my  CARD?")
    assert bank.skip_query("P", "refund please")
    assert not bank.skip_query("P", "where is my card?")     # the same query, matched loosely
    assert bank.skip_query("Q", "something else")
    bank.close()
    again = DiscrepancyBank(path)
    assert again.skipped_queries("P") == ["where is my card?", "refund please"]
    assert again.skipped_queries("Q") == ["something else"]
    assert again.unskip_query("P", "REFUND please")
    assert not again.unskip_query("P", "never skipped")
    assert again.skipped_queries("P") == ["where is my card?"]
    again.close()


def test_skips_go_with_their_profile_and_bad_input_is_refused(small_bank):
    with pytest.raises(BankError, match="must not be empty"):
        small_bank.skip_query("P", "   ")
    with pytest.raises(BankError, match="must be text"):
        small_bank.skip_query("P", 12)
    with pytest.raises(BankError, match="at most"):
        small_bank.skip_query("P", "x" * 20_001)
    small_bank.skip_query("P", "a query")
    small_bank.delete_profile("P")
    small_bank.create_profile("P", SMALL_R)
    assert small_bank.skipped_queries("P") == []


def test_curve_rows_are_replaced_from_a_position_and_other_rules_dropped(small_bank):
    rows = [CurveRow(0, "c0", True, True), CurveRow(2, "c2", False, True), CurveRow(3, "c3", False, False)]
    assert small_bank.store_curve_rows("P", "rule-a", rows, keep_before=0) == 3
    assert small_bank.curve_rows("P", "rule-a") == rows
    # from position 2 on the history changed: rows there are replaced, row 0 stays
    small_bank.store_curve_rows("P", "rule-a", [CurveRow(2, "x2", True, False)], keep_before=2)
    assert small_bank.curve_rows("P", "rule-a") == [rows[0], CurveRow(2, "x2", True, False)]
    small_bank.store_curve_rows("P", "rule-b", [CurveRow(0, "b0", True, True)], keep_before=0)
    assert small_bank.curve_rows("P", "rule-a") == []
    assert small_bank.curve_rows("P", "rule-b") == [CurveRow(0, "b0", True, True)]
    with pytest.raises(BankError, match="position"):
        small_bank.store_curve_rows("P", "rule-b", [CurveRow(1, "y", True, True)], keep_before=3)
    assert small_bank.curve_rows("P", "rule-b") == [CurveRow(0, "b0", True, True)]  # unchanged


def test_model_distributions_are_stored_by_rating_and_read_only_for_the_same_response_set(bank):
    import numpy as np

    bank.create_profile("p", ["a", "b", "c"])
    first = bank.add_rating("p", "x one", "a", "b")
    second = bank.add_rating("p", "x two", "b", "b")
    assert bank.model_distributions("p")[0] == []          # none stored yet
    assert bank.set_model_distributions("p", {first.id: [0.7, 0.2, 0.1], "no-such-id": [1, 0, 0]}) == 1
    ids, p = bank.model_distributions("p")
    assert ids == [first.id] and p.shape == (1, 3)
    np.testing.assert_allclose(p[0], [0.7, 0.2, 0.1], rtol=1e-6)
    # bad input: one clear error, and nothing of the call is stored
    for bad in ([0.5, 0.5], [0.5, float("nan"), 0.5], [1.2, -0.1, 0.0], [0, 0, 0], ["a", 1, 2]):
        with pytest.raises(BankError):
            bank.set_model_distributions("p", {second.id: [0.1, 0.8, 0.1], first.id: bad})
    assert bank.model_distributions("p")[0] == [first.id]
    # the response set changes: the stored vector no longer says which value is which response
    bank.update_profile("p", responses=["a", "b", "c", "d"])
    assert bank.model_distributions("p")[0] == []


def test_a_rating_and_its_model_distribution_are_written_together_or_not_at_all(bank):
    import numpy as np

    from bank_store import DistributionError

    bank.create_profile("p", ["a", "b", "c"])
    kept = bank.add_rating("p", "x one", "a", "b", model_distribution=[0.6, 0.3, 0.1])
    ids, p = bank.model_distributions("p")
    assert ids == [kept.id]
    np.testing.assert_allclose(p[0], [0.6, 0.3, 0.1], rtol=1e-6)
    # a distribution that does not fit the response set: one clear error, and no rating either
    for bad in ([0.5, 0.5], [float("inf"), 0, 0], "abc"):
        with pytest.raises(DistributionError):
            bank.add_rating("p", "x two", "b", "b", model_distribution=bad)
    assert [r.instance for r in bank.ratings("p")] == ["x one"]
    assert bank.counts("p") == {("a", "b"): 1}
    # undo and redo: the removed rating comes back with its distribution in one transaction
    removed = bank.remove_rating("p", kept.id)
    assert bank.model_distributions("p")[0] == []
    assert bank.restore_ratings("p", [removed], {removed.id: [0.6, 0.3, 0.1]}) == 1
    assert bank.model_distributions("p")[0] == [kept.id]
    assert bank.counts("p") == {("a", "b"): 1}
    # a distribution that no longer fits: the rating still comes back, with y' alone
    removed = bank.remove_rating("p", kept.id)
    assert bank.restore_ratings("p", [removed], {removed.id: [1.0]}) == 1
    assert [r.id for r in bank.ratings("p")] == [kept.id]
    assert bank.model_distributions("p")[0] == []


def test_many_ratings_and_their_distributions_are_one_transaction(bank):
    from bank_store import BankError, DistributionError

    bank.create_profile("p", ["a", "b", "c"])
    batch = [{"instance": f"x {i}", "model_response": "a", "user_response": "b"} for i in range(3)]
    assert bank.add_ratings("p", batch, [[0.6, 0.3, 0.1], None, [0.5, 0.25, 0.25]]) == 3
    assert len(bank.model_distributions("p")[0]) == 2
    more = [{"instance": f"y {i}", "model_response": "a", "user_response": "c"} for i in range(2)]
    for dists, error in (([[0.6, 0.3, 0.1], [1.0]], DistributionError),
                         ([[0.6, 0.3, 0.1]], BankError)):     # one per rating or none
        with pytest.raises(error):
            bank.add_ratings("p", more, dists)
    assert len(bank.ratings("p")) == 3 and bank.counts("p") == {("a", "b"): 3}
