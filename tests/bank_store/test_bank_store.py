"""DiscrepancyBank against a real SQLite file in tmp_path: profiles, ratings, counts, undo,
embeddings, stats, file modes and threads."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter

import numpy as np
import pytest

from bank_store import (BankError, DiscrepancyBank, ProfileExistsError, ProfileNotFoundError,
                        Rating, RatingNotFoundError)
from bank_store.migrations import known_names
from bank_helpers import SMALL_R, counts_equal_group_by, raw_rows

A, B, C, D, E, F = SMALL_R


def test_profiles_create_get_list_update_delete(bank):
    p = bank.create_profile("P", SMALL_R, description="mine", fingerprint="fp1")
    assert p.responses == SMALL_R and p.description == "mine" and p.fingerprint == "fp1"
    assert bank.get_profile("P") == p
    bank.create_profile("Another", ["x", "y"])
    assert [q.name for q in bank.list_profiles()] == ["Another", "P"]
    q = bank.update_profile("P", description="new", responses=list(SMALL_R) + ["extra"])
    assert q.description == "new" and q.responses[-1] == "extra" and q.fingerprint == "fp1"
    assert q.updated >= p.updated
    with pytest.raises(ProfileExistsError, match="already exists"):
        bank.create_profile("P", ["a", "b"])
    bank.delete_profile("P")
    with pytest.raises(ProfileNotFoundError, match="no profile named 'P'"):
        bank.get_profile("P")


@pytest.mark.parametrize("responses, message", [
    ([], "empty"), (["a", "A "], "repeats response 1"), (["a", ""], "must not be empty"),
    ("abc", "must be a list"), (["a", 3], "must be text")])
def test_bad_response_sets_are_refused(bank, responses, message):
    with pytest.raises(BankError, match=message):
        bank.create_profile("P", responses)
    assert bank.list_profiles() == []


def test_add_rating_maps_to_the_response_set_and_keeps_raw_responses(small_bank):
    r = small_bank.add_rating("P", "where is my card?", "  Card   ARRIVAL ", "lost or stolen card")
    assert (r.model_response, r.user_response) == (A, D)
    raw = small_bank.add_rating("P", "hmm", "something else entirely", A)
    assert raw.model_response == "something else entirely"
    assert r.id == r.expected_id() and r.id != raw.id
    assert small_bank.ratings("P") == [r, raw]
    # the very same rating twice is stored once; the same triple again is a second rating
    assert small_bank.add_ratings("P", [r]) == 0
    again = small_bank.add_rating("P", "where is my card?", A, D)
    assert again.id != r.id and small_bank.counts("P")[(A, D)] == 2


def test_rating_validation(small_bank):
    for kwargs, message in [({"source": "guessed"}, "source must be one of"),
                            ({"created": "yesterday"}, "ISO-8601")]:
        with pytest.raises(BankError, match=message):
            small_bank.add_rating("P", "x", A, B, **kwargs)
    with pytest.raises(BankError, match="model_response must not be empty"):
        small_bank.add_rating("P", "x", " ", B)
    forged = Rating("0" * 32, "x", A, B, "rated", None, None, "2026-01-01T00:00:00+00:00")
    with pytest.raises(BankError, match="does not match its content"):
        small_bank.add_ratings("P", [Rating.new("ok", A, A), forged])
    assert small_bank.rating_count("P") == 0  # the whole batch was refused


def test_candidate_set_most_frequent_first_ties_in_response_set_order(small_bank):
    pairs = [(A, C), (A, B), (A, C), (A, E), (A, B), (A, A), (B, B)]
    small_bank.add_ratings("P", [{"instance": f"q{i}", "model_response": a, "user_response": b}
                                 for i, (a, b) in enumerate(pairs)])
    assert small_bank.candidate_set("P", A) == [(B, 2), (C, 2), (A, 1), (E, 1)]
    assert small_bank.candidate_set("P", " CARD arrival") == small_bank.candidate_set("P", A)
    assert small_bank.candidate_set("P", F) == []
    assert small_bank.candidate_set("P", "never seen") == []


def test_transition_matrix_and_raw_model_responses(small_bank):
    small_bank.add_ratings("P", [
        {"instance": "1", "model_response": A, "user_response": B},
        {"instance": "2", "model_response": A, "user_response": B},
        {"instance": "3", "model_response": C, "user_response": C},
        {"instance": "4", "model_response": "free text", "user_response": D},
        {"instance": "5", "model_response": A, "user_response": "not a member"}])
    tm = small_bank.transition_matrix("P")
    assert tm.responses == list(SMALL_R)
    expected = np.zeros((6, 6), dtype=np.int64)
    expected[0, 1], expected[2, 2] = 2, 1
    assert np.array_equal(tm.counts, expected)
    assert tm.raw_model_responses == ["free text"]
    assert tm.raw_counts.tolist() == [[0, 0, 0, 1, 0, 0]]
    assert tm.unmatched == {(A, "not a member"): 1}


def test_counts_follow_every_change(small_bank):
    path = small_bank.path
    rows = [{"instance": f"q{i}", "model_response": SMALL_R[i % 3],
             "user_response": SMALL_R[(i * 5) % 6]} for i in range(40)]
    assert small_bank.add_ratings("P", rows) == 40
    assert counts_equal_group_by(path)
    removed = small_bank.undo_last("P", 7)
    assert len(removed) == 7 and removed[0].instance == "q39" and removed[-1].instance == "q33"
    assert counts_equal_group_by(path)
    one = small_bank.ratings("P")[5]
    assert small_bank.remove_rating("P", one.id) == one
    assert counts_equal_group_by(path)
    with pytest.raises(RatingNotFoundError):
        small_bank.remove_rating("P", one.id)
    expected = Counter((r.model_response, r.user_response) for r in small_bank.ratings("P"))
    assert small_bank.counts("P") == dict(expected)
    assert small_bank.rating_count("P") == 32


def test_remove_pair_then_restore_brings_back_the_same_bank(small_bank):
    small_bank.add_ratings("P", [{"instance": f"q{i}", "model_response": A,
                                  "user_response": B if i % 2 else C} for i in range(10)])
    before_ratings = {r.id: r for r in small_bank.ratings("P")}
    before_counts = small_bank.counts("P")
    removed = small_bank.remove_pair("P", A, B)
    assert len(removed) == 5 and all(r.user_response == B for r in removed)
    assert (A, B) not in small_bank.counts("P") and small_bank.candidate_set("P", A) == [(C, 5)]
    assert counts_equal_group_by(small_bank.path)
    assert small_bank.restore_ratings("P", removed) == 5
    assert {r.id: r for r in small_bank.ratings("P")} == before_ratings
    assert small_bank.counts("P") == before_counts
    assert small_bank.remove_pair("P", F, F) == []


def test_undo_validates_n(small_bank):
    with pytest.raises(BankError, match="positive"):
        small_bank.undo_last("P", 0)
    assert small_bank.undo_last("P", 3) == []


def test_embeddings_round_trip_by_model(small_bank):
    r1 = small_bank.add_rating("P", "one", A, B)
    r2 = small_bank.add_rating("P", "two", A, A)
    r3 = small_bank.add_rating("P", "three", C, C)
    vectors = {r1.id: np.arange(4, dtype=np.float64), r3.id: np.ones(4), "gone": np.zeros(4)}
    assert small_bank.set_embeddings("P", vectors, "minilm") == 2
    ids, matrix = small_bank.embeddings("P", "minilm")
    assert ids == [r1.id, r3.id] and matrix.dtype == np.float32
    assert np.array_equal(matrix, np.array([[0, 1, 2, 3], [1, 1, 1, 1]], dtype=np.float32))
    assert small_bank.embeddings("P", "other")[0] == []
    with pytest.raises(BankError, match="finite"):
        small_bank.set_embeddings("P", {r2.id: np.array([np.nan, 1.0])}, "minilm")
    with pytest.raises(BankError, match="values"):
        small_bank.set_embeddings("P", {r1.id: np.ones(3), r2.id: np.ones(4)}, "minilm")


def test_stats(small_bank):
    small_bank.add_rating("P", "1", A, A)
    small_bank.add_rating("P", "2", A, B, source="estimated")
    small_bank.add_rating("P", "3", "raw", B, source="imported")
    small_bank.add_rating("P", "4", C, C)
    s = small_bank.stats("P")
    assert s["ratings"] == 4
    assert s["by_source"] == {"rated": 2, "estimated": 1, "imported": 1}
    assert s["agreement"] == 0.5
    assert s["coverage"] == pytest.approx(3 / 6)  # A, B, C of six responses


def test_transaction_groups_calls_and_rolls_back_on_error(small_bank):
    before = raw_rows(small_bank.path)
    with pytest.raises(RuntimeError):
        with small_bank.transaction():
            small_bank.add_rating("P", "x", A, B)
            small_bank.create_profile("Q", ["q", "r"])
            raise RuntimeError("boom")
    assert raw_rows(small_bank.path) == before
    with pytest.raises(BankError, match="read-only"):
        with small_bank.transaction(write=False):
            small_bank.add_rating("P", "x", A, B)
    assert raw_rows(small_bank.path) == before


def test_files_are_owner_only(tmp_path):
    path = tmp_path / "deeper" / "bank.sqlite3"
    bank = DiscrepancyBank(path)
    bank.create_profile("P", SMALL_R)
    bank.add_rating("P", "x", A, B)
    for suffix in ("", "-wal", "-shm"):
        assert (path.parent / (path.name + suffix)).stat().st_mode & 0o777 == 0o600, suffix
    backup = bank.backup(tmp_path / "b" / "copy.sqlite3")
    assert backup.stat().st_mode & 0o777 == 0o600
    bank.close()
    con = sqlite3.connect(backup)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert con.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] == 1
    con.close()


def test_wal_and_pragmas(small_bank):
    con = small_bank._conn()
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    assert con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_not_a_bank_is_refused_and_left_alone(tmp_path):
    junk = tmp_path / "notes.sqlite3"
    junk.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(BankError, match="not a usable CM Desktop bank"):
        DiscrepancyBank(junk)
    assert junk.read_bytes().startswith(b"these are my notes")
    other = tmp_path / "other.sqlite3"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE stuff (x)")
    con.commit()
    con.close()
    with pytest.raises(BankError, match="not a CM Desktop bank"):
        DiscrepancyBank(other)
    with pytest.raises(BankError, match="directory"):
        DiscrepancyBank(tmp_path)


def test_a_bank_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "bank.sqlite3"
    DiscrepancyBank(path).close()
    con = sqlite3.connect(path)
    con.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
                " VALUES ('cm_desktop_bank', '9999_future', 'later')")
    con.commit()
    con.close()
    with pytest.raises(BankError, match="newer version"):
        DiscrepancyBank(path)


def test_reopening_keeps_everything_and_migrations_run_once(tmp_path):
    path = tmp_path / "bank.sqlite3"
    bank = DiscrepancyBank(path)
    bank.create_profile("P", SMALL_R)
    r = bank.add_rating("P", "x", A, B)
    bank.close()
    again = DiscrepancyBank(path)
    assert again.ratings("P") == [r]
    con = sqlite3.connect(path)
    names = [n for (n,) in con.execute("SELECT name FROM _sqlite_migrations ORDER BY rowid")]
    assert names == known_names()
    con.close()
    again.close()


def test_a_bank_from_the_first_version_is_upgraded_and_keeps_its_ratings(tmp_path):
    path = tmp_path / "bank.sqlite3"
    DiscrepancyBank(path).close()
    # make it a first-version bank: only 0001 applied, none of the later tables
    con = sqlite3.connect(path)
    later = [n for n in known_names() if n != "0001_initial"]
    con.executemany("DELETE FROM _sqlite_migrations WHERE name = ?", [(n,) for n in later])
    for table in ("messages", "conversations", "guidance", "skipped_queries", "curve_points"):
        con.execute(f"DROP TABLE {table}")
    for column in ("model_distribution", "model_distribution_key"):
        con.execute(f"ALTER TABLE ratings DROP COLUMN {column}")
    con.commit()
    con.execute("INSERT INTO profiles (name, responses, created, updated)"
                " VALUES ('P', '[\"a\", \"b\"]', '2025-01-01T00:00:00+00:00',"
                " '2025-01-01T00:00:00+00:00')")
    con.commit()
    con.close()
    bank = DiscrepancyBank(path)
    assert bank.get_profile("P").responses == ("a", "b")
    con = sqlite3.connect(path)
    tables = {n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"guidance", "conversations", "messages"} <= tables
    columns = {row[1] for row in con.execute("PRAGMA table_info(ratings)")}
    assert {"model_distribution", "model_distribution_key"} <= columns
    con.close()
    bank.close()


def test_one_bank_object_used_from_four_threads_at_once(small_bank):
    errors, connections = [], set()
    start = threading.Barrier(4)

    def work(t: int) -> None:
        try:
            start.wait()
            connections.add(id(small_bank._conn()))
            for i in range(40):
                small_bank.add_rating("P", f"t{t} q{i}", SMALL_R[t], SMALL_R[(t + i) % 6])
                small_bank.candidate_set("P", SMALL_R[t])
                if i % 10 == 9:
                    small_bank.undo_last("P", 1)
            small_bank.close()
        except Exception as e:  # collected and asserted below: a thread must not die silently
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert errors == []
    assert len(connections) == 4, "each thread must get its own connection"
    assert small_bank.rating_count("P") == 4 * 36
    assert counts_equal_group_by(small_bank.path)
    assert small_bank.integrity_check() == "ok"


def test_a_batch_of_held_and_new_ratings_counts_only_the_new(small_bank):
    small_bank.add_ratings("P", [{"instance": "q1", "model_response": A, "user_response": B},
                                 {"instance": "q2", "model_response": A, "user_response": B}])
    held = small_bank.ratings("P")
    added = small_bank.add_ratings("P", [held[0], {"instance": "q3", "model_response": A,
                                                   "user_response": B},
                                         {"instance": "q4", "model_response": C,
                                          "user_response": D}])
    assert added == 2
    assert small_bank.counts("P") == {(A, B): 3, (C, D): 1}
    assert counts_equal_group_by(small_bank.path)
