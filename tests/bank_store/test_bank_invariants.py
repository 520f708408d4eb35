"""Property test: whatever sequence of adds, undos, removals, restores and imports runs, the
counts table equals a GROUP BY over the ratings, and candidate_set agrees with the ratings."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bank_store import DiscrepancyBank
from bank_store.formats import export_native, import_file
from bank_helpers import SMALL_R, counts_equal_group_by

RESPONSE = st.sampled_from(SMALL_R + ("raw answer",))
OPS = st.lists(st.one_of(
    st.tuples(st.just("add"), st.lists(st.tuples(RESPONSE, RESPONSE), min_size=1, max_size=6)),
    st.tuples(st.just("undo"), st.integers(1, 4)),
    st.tuples(st.just("remove_pair"), st.tuples(RESPONSE, RESPONSE)),
    st.tuples(st.just("remove_one"), st.integers(0, 50)),
    st.tuples(st.just("restore_last"), st.none()),
    st.tuples(st.just("reimport"), st.booleans()),
    # held ratings and new ones in one batch: the held ones are skipped, the new ones count
    st.tuples(st.just("add_mixed"), st.lists(st.tuples(RESPONSE, RESPONSE), min_size=1,
                                             max_size=4)),
), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_counts_always_equal_the_ratings(tmp_path_factory, ops):
    root = tmp_path_factory.mktemp("inv")
    bank = DiscrepancyBank(root / "bank.sqlite3")
    bank.create_profile("P", SMALL_R)
    removed_last: list = []
    try:
        for step, (op, arg) in enumerate(ops):
            if op == "add":
                bank.add_ratings("P", [{"instance": f"s{step} q{i}", "model_response": a,
                                        "user_response": b} for i, (a, b) in enumerate(arg)])
            elif op == "add_mixed":
                held = bank.ratings("P")[:3]
                fresh = [{"instance": f"m{step} q{i}", "model_response": a, "user_response": b}
                         for i, (a, b) in enumerate(arg)]
                assert bank.add_ratings("P", held + fresh) == len(fresh)
            elif op == "undo":
                removed_last = bank.undo_last("P", arg)
            elif op == "remove_pair":
                removed_last = bank.remove_pair("P", *arg)
            elif op == "remove_one":
                held = bank.ratings("P")
                if held:
                    removed_last = [bank.remove_rating("P", held[arg % len(held)].id)]
            elif op == "restore_last":
                bank.restore_ratings("P", removed_last)
                removed_last = []
            elif op == "reimport":
                path = root / "p.json.gz"
                export_native(bank, "P", path)
                before = bank.ratings("P")
                report = import_file(bank, path, "P", mode="replace" if arg else "merge")
                assert report.added == (len(before) if arg else 0)
                assert sorted(r.id for r in bank.ratings("P")) == sorted(r.id for r in before)
            assert counts_equal_group_by(bank.path), (step, op)
            ratings = bank.ratings("P")
            pairs = Counter((r.model_response, r.user_response) for r in ratings)
            assert bank.counts("P") == dict(pairs)
            for y_model in SMALL_R:
                expected = {b: n for (a, b), n in pairs.items() if a == y_model}
                got = bank.candidate_set("P", y_model)
                assert dict(got) == expected
                assert [n for _, n in got] == sorted(expected.values(), reverse=True)
    finally:
        bank.close()
