"""DiscrepancyBank: profiles, ratings and transition counts in one SQLite file.

The file, its connections and transactions are BankConnection's (connection.py: why WAL,
synchronous=FULL, BEGIN IMMEDIATE); backups, restore and recovery are backups.py's. Here: what
the bank holds and the rules for changing it. Every public method is one transaction; counts
are kept equal to a GROUP BY over ratings in the same transaction as every ratings change.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from . import backups
from .connection import BankConnection
from .conversations import ConversationsMixin
from .gc_pause import gc_paused
from .errors import (BankError, DistributionError, ProfileExistsError, ProfileNotFoundError,
                     RatingNotFoundError)
from .guidance import GuidanceMixin
from .rate_state import RateStateMixin
from .vectors import DISTRIBUTION_COLUMNS, VectorsMixin
from .records import (SOURCES, Profile, Rating, RatingFieldError, TransitionMatrix,
                      check_profile_name, check_text, make_rating, normalise_response,
                      response_index, utc_now, utc_stamps, validate_responses)

_RATING_COLUMNS = (
    "id, instance, model_response, user_response, source, strategy, fingerprint, created"
)
_PROFILE_COLUMNS = "id, name, responses, description, fingerprint, created, updated"
MAX_UNDO = 2 ** 62  # more than any bank holds; bigger counts would overflow SQLite's integers


class DiscrepancyBank(BankConnection, GuidanceMixin, ConversationsMixin, RateStateMixin,
                      VectorsMixin):
    """The user's discrepancy memory bank; see docs/ARCHITECTURE.md for the contract.

    DiscrepancyBank(path, backup_dir=None, check=True): see BankConnection."""

    # ---- profiles ---------------------------------------------------------------------------

    @staticmethod
    def _profile(row: tuple) -> Profile:
        responses = response_index(row[2])[0]
        return Profile(row[0], row[1], responses, row[3], row[4], row[5], row[6])

    def _get_profile(self, conn: sqlite3.Connection, profile: str | Profile) -> Profile:
        name = profile.name if isinstance(profile, Profile) else profile
        row = conn.execute(f"SELECT {_PROFILE_COLUMNS} FROM profiles WHERE name = ?",
                           (name,)).fetchone()
        if row is None:
            raise ProfileNotFoundError(f"no profile named {name!r}")
        return self._profile(row)

    def create_profile(self, name: str, responses: Sequence[str], description: str = "",
                       fingerprint: str | None = None) -> Profile:
        name = check_profile_name(name)
        responses = validate_responses(responses)
        check_text(description, "description", allow_empty=True)
        now = utc_now()
        with self._txn(write=True) as conn:
            try:
                conn.execute(
                    "INSERT INTO profiles (name, responses, description, fingerprint, created,"
                    " updated) VALUES (?, ?, ?, ?, ?, ?)",
                    (name, json.dumps(list(responses), ensure_ascii=False), description,
                     fingerprint, now, now))
            except sqlite3.IntegrityError:
                raise ProfileExistsError(f"a profile named {name!r} already exists") from None
            return self._get_profile(conn, name)

    def get_profile(self, name: str) -> Profile:
        with self._txn(write=False) as conn:
            return self._get_profile(conn, name)

    def list_profiles(self) -> list[Profile]:
        with self._txn(write=False) as conn:
            rows = conn.execute(f"SELECT {_PROFILE_COLUMNS} FROM profiles ORDER BY name")
            return [self._profile(r) for r in rows.fetchall()]

    def delete_profile(self, name: str, *, backup: bool = False) -> Path | None:
        """Delete a profile and everything it holds. backup=True first backs up the bank inside
        the same write lock; returns that backup's path (None without a backup)."""
        with self.transaction(write=False) as conn:  # a missing profile fails before a backup
            self._get_profile(conn, name)
        with self.destructive_transaction(take_backup=backup) as taken:
            conn = self._conn()
            p = self._get_profile(conn, name)
            conn.execute("DELETE FROM counts WHERE profile_id = ?", (p.id,))
            conn.execute("DELETE FROM ratings WHERE profile_id = ?", (p.id,))
            conn.execute("DELETE FROM profiles WHERE id = ?", (p.id,))
        return taken

    def update_profile(self, name: str, *, description: str | None = None,
                       fingerprint: str | None = None,
                       responses: Sequence[str] | None = None) -> Profile:
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, name)
            new_desc = p.description if description is None else check_text(
                description, "description", allow_empty=True)
            new_fp = p.fingerprint if fingerprint is None else fingerprint
            new_resp = p.responses if responses is None else validate_responses(responses)
            conn.execute(
                "UPDATE profiles SET description = ?, fingerprint = ?, responses = ?, updated = ?"
                " WHERE id = ?",
                (new_desc, new_fp, json.dumps(list(new_resp), ensure_ascii=False), utc_now(),
                 p.id))
            return self._get_profile(conn, name)

    # ---- ratings ------------------------------------------------------------------------------

    def add_rating(self, profile: str, instance: str, model_response: str, user_response: str,
                   *, source: str = "rated", strategy: str | None = None,
                   fingerprint: str | None = None, created: str | None = None,
                   model_distribution: Any = None) -> Rating:
        """Record one rating; responses matching a member of R (case/whitespace) are stored as
        that member. Adding the very same rating (same id) twice stores it once.
        model_distribution: the model's p(y'|x) over the profile's responses (in their order)
        when it gave model_response, stored with the rating in the same transaction; one that
        does not fit the response set raises DistributionError and nothing is written."""
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            try:
                r = make_rating({"instance": instance, "model_response": model_response,
                                 "user_response": user_response, "source": source,
                                 "strategy": strategy, "fingerprint": fingerprint,
                                 "created": created}, members=self._members(p))
            except RatingFieldError as e:
                raise BankError(str(e)) from None
            blobs = ([] if model_distribution is None
                     else [self._distribution_row(p, r.id, model_distribution)])
            self._insert(conn, p, [r])
            self._update_ratings(conn, p, DISTRIBUTION_COLUMNS, blobs)
            return r

    @staticmethod
    def _members(p: Profile) -> dict[str, str]:
        return response_index(json.dumps(list(p.responses), ensure_ascii=False))[2]

    def _insert(self, conn: sqlite3.Connection, p: Profile, ratings: Sequence[Rating]) -> int:
        """Insert (skipping ids already present) and fold the new rows into counts."""
        if not ratings:
            return 0
        before = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM ratings").fetchone()[0]
        changes_before = conn.total_changes
        # a Rating is a tuple in the columns' order: it binds as it is (the profile id, an
        # integer from the profiles table, is part of the statement)
        conn.executemany(
            f"INSERT OR IGNORE INTO ratings (profile_id, {_RATING_COLUMNS})"
            f" VALUES ({int(p.id)}, ?, ?, ?, ?, ?, ?, ?, ?)", ratings)
        added = conn.total_changes - changes_before
        if added == len(ratings):
            # every rating was new: its pairs are the counts to add (a Counter over the batch
            # costs a tenth of re-reading the new rows with GROUP BY)
            pairs = Counter((r.model_response, r.user_response) for r in ratings)
            conn.executemany(
                "INSERT INTO counts (profile_id, model_response, user_response, n)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (profile_id, model_response, user_response)"
                " DO UPDATE SET n = n + excluded.n",
                ((p.id, a, b, n) for (a, b), n in pairs.items()))
        elif added:
            # some were already there: the new rows are exactly those with seq > before
            # (rowids grow while we hold the write lock)
            conn.execute(
                "INSERT INTO counts (profile_id, model_response, user_response, n)"
                " SELECT profile_id, model_response, user_response, COUNT(*) FROM ratings"
                " WHERE seq > ? GROUP BY profile_id, model_response, user_response"
                " ON CONFLICT (profile_id, model_response, user_response)"
                " DO UPDATE SET n = n + excluded.n", (before,))
        return added

    def add_ratings(self, profile: str, ratings: Iterable[Rating | dict],
                    model_distributions: Sequence[Any] | None = None) -> int:
        """Add many ratings in one transaction; returns how many were new.

        Rating objects and dicts carrying an "id" are existing ratings: stored verbatim and
        their id must match their content. Dicts without an id are fresh ratings (as add_rating).
        model_distributions: one per rating (None where there is none), stored with them as
        add_rating stores one; one that does not fit raises DistributionError, nothing written.
        """
        items = list(ratings)
        dists = list(model_distributions) if model_distributions is not None else []
        if dists and len(dists) != len(items):
            raise BankError(f"{len(dists)} model distributions for {len(items)} ratings")
        with gc_paused(), self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            checked = self._checked(p, items)
            blobs = [self._distribution_row(p, r.id, d) for r, d in zip(checked, dists)
                     if d is not None]
            added = self._insert(conn, p, checked)
            self._update_ratings(conn, p, DISTRIBUTION_COLUMNS, blobs)
            return added

    def _checked(self, p: Profile, items: Sequence[Rating | dict]) -> list[Rating]:
        """add_ratings' items as Ratings, each checked (BankError naming the first bad one)."""
        stamps = utc_stamps(len(items))  # one clock read for the fresh ones among them
        members = self._members(p)
        checked: list[Rating] = []
        for i, item in enumerate(items):
            try:
                if isinstance(item, Rating):
                    checked.append(make_rating(item._asdict(), fresh=False, unicode=False))
                elif isinstance(item, dict):
                    checked.append(make_rating(item, members=members, fresh="id" not in item,
                                               unicode=False, now=stamps[i]))
                else:
                    raise BankError(f"expected a Rating or a dict, not {type(item).__name__}")
            except BankError as e:
                raise BankError(f"rating {i}: {e}") from None
        return checked

    def _add_parsed_ratings(self, profile: str, ratings: Sequence[Rating]) -> int:
        """add_ratings for ratings read_bank_file built and checked (ids computed from their
        content there): skips a second hash per rating in bulk imports. bank_store only."""
        with gc_paused(), self._txn(write=True) as conn:
            return self._insert(conn, self._get_profile(conn, profile), ratings)

    def ratings(self, profile: str, *, source: str | None = None) -> list[Rating]:
        with self._txn(write=False) as conn:
            p = self._get_profile(conn, profile)
            sql = f"SELECT {_RATING_COLUMNS} FROM ratings WHERE profile_id = ?"
            args: tuple = (p.id,)
            if source is not None and source not in SOURCES:
                raise BankError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
            if source is not None:
                sql += " AND source = ?"
                args += (source,)
            return list(map(Rating._make, conn.execute(sql + " ORDER BY seq", args)))

    def rating_count(self, profile: str) -> int:
        with self._txn(write=False) as conn:
            p = self._get_profile(conn, profile)
            return conn.execute("SELECT COUNT(*) FROM ratings WHERE profile_id = ?",
                                (p.id,)).fetchone()[0]

    def _remove(self, conn: sqlite3.Connection, p: Profile, where: str,
                args: tuple) -> list[Rating]:
        rows = conn.execute(f"SELECT seq, {_RATING_COLUMNS} FROM ratings WHERE profile_id = ?"
                            f" AND {where}", (p.id,) + args).fetchall()
        if not rows:
            return []
        conn.executemany("DELETE FROM ratings WHERE seq = ?", ((row[0],) for row in rows))
        pairs = Counter((row[3], row[4]) for row in rows)
        # pairs whose every rating goes disappear; the rest count down (counts.n stays > 0)
        conn.executemany(
            "DELETE FROM counts WHERE profile_id = ? AND model_response = ?"
            " AND user_response = ? AND n <= ?", ((p.id, a, b, n) for (a, b), n in pairs.items()))
        conn.executemany(
            "UPDATE counts SET n = n - ? WHERE profile_id = ? AND model_response = ?"
            " AND user_response = ?", ((n, p.id, a, b) for (a, b), n in pairs.items()))
        return [Rating(*row[1:]) for row in rows]

    def undo_last(self, profile: str, n: int = 1) -> list[Rating]:
        """Remove the newest n ratings; returns them newest first."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise BankError(f"undo needs a positive number of ratings, not {n!r}")
        n = min(n, MAX_UNDO)  # asking for more than the profile holds undoes all of it
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            removed = self._remove(conn, p, "seq IN (SELECT seq FROM ratings WHERE profile_id = ?"
                                   " ORDER BY seq DESC LIMIT ?)", (p.id, n))
            return removed[::-1]

    def remove_rating(self, profile: str, rating_id: str) -> Rating:
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            removed = self._remove(conn, p, "id = ?", (rating_id,))
            if not removed:
                raise RatingNotFoundError(f"profile {p.name!r} has no rating {rating_id!r}")
            return removed[0]

    def remove_pair(self, profile: str, model_response: str, user_response: str) -> list[Rating]:
        """Remove a whole bank entry (every rating of y' -> y); returns them oldest first."""
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            return self._remove(conn, p, "model_response = ? AND user_response = ?",
                                (model_response, user_response))

    def remove_all_ratings(self, profile: str) -> int:
        """Empty a profile (a --replace import); returns how many ratings were removed."""
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            conn.execute("DELETE FROM counts WHERE profile_id = ?", (p.id,))
            return conn.execute("DELETE FROM ratings WHERE profile_id = ?", (p.id,)).rowcount

    def restore_ratings(self, profile: str, ratings: list[Rating],
                        model_distributions: dict[str, Any] | None = None) -> int:
        """Put removed ratings back (same ids), with the model's distributions by rating id as
        add_rating stores them, in one transaction; returns how many were added. A distribution
        that no longer fits (the response set changed since the removal) is left out: the
        rating comes back with y' alone, never not at all."""
        with gc_paused(), self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            checked = self._checked(p, ratings)
            blobs = []
            for rid, vec in (model_distributions or {}).items():
                try:
                    blobs.append(self._distribution_row(p, rid, vec))
                except DistributionError:
                    pass
            added = self._insert(conn, p, checked)
            self._update_ratings(conn, p, DISTRIBUTION_COLUMNS, blobs)
            return added

    # ---- discrepancies ------------------------------------------------------------------------

    def candidate_set(self, profile: str, model_response: str) -> list[tuple[str, int]]:
        with self._txn(write=False) as conn:
            p = self._get_profile(conn, profile)
            _, order, members = response_index(json.dumps(list(p.responses),
                                                           ensure_ascii=False))
            y_model = members.get(normalise_response(model_response), model_response)
            rows = conn.execute("SELECT user_response, n FROM counts WHERE profile_id = ?"
                                " AND model_response = ?", (p.id, y_model)).fetchall()
        big = len(order)
        return sorted(rows, key=lambda t: (-t[1], order.get(t[0], big), t[0]))

    def counts(self, profile: str) -> dict[tuple[str, str], int]:
        with self._txn(write=False) as conn:
            p = self._get_profile(conn, profile)
            return {(a, b): n for a, b, n in conn.execute(
                "SELECT model_response, user_response, n FROM counts WHERE profile_id = ?",
                (p.id,))}

    def transition_matrix(self, profile: str) -> TransitionMatrix:
        with self._txn(write=False) as conn:
            p = self._get_profile(conn, profile)
            rows = conn.execute("SELECT model_response, user_response, n FROM counts"
                                " WHERE profile_id = ?", (p.id,)).fetchall()
        index = {r: i for i, r in enumerate(p.responses)}
        raw = sorted({a for a, b, _ in rows if a not in index})
        raw_index = {r: i for i, r in enumerate(raw)}
        counts = np.zeros((len(index), len(index)), dtype=np.int64)
        raw_counts = np.zeros((len(raw), len(index)), dtype=np.int64)
        unmatched: dict[tuple[str, str], int] = {}
        for a, b, n in rows:
            if b not in index:
                unmatched[(a, b)] = n
            elif a in index:
                counts[index[a], index[b]] = n
            else:
                raw_counts[raw_index[a], index[b]] = n
        return TransitionMatrix(list(p.responses), counts, raw, raw_counts, unmatched)

    # ---- summaries and backups ----------------------------------------------------------------

    def stats(self, profile: str) -> dict[str, Any]:
        with self._txn(write=False) as conn:
            p = self._get_profile(conn, profile)
            by_source = dict(conn.execute("SELECT source, COUNT(*) FROM ratings WHERE"
                                          " profile_id = ? GROUP BY source", (p.id,)))
            rows = conn.execute("SELECT model_response, user_response, n FROM counts"
                                " WHERE profile_id = ?", (p.id,)).fetchall()
        total = sum(by_source.values())
        members = set(p.responses)
        seen = {a for a, _, _ in rows} | {b for _, b, _ in rows}
        agree = sum(n for a, b, n in rows if a == b)
        return {
            "ratings": total,
            "by_source": {s: by_source.get(s, 0) for s in SOURCES},
            "coverage": len(seen & members) / len(members) if members else 0.0,
            "agreement": agree / total if total else 0.0,
            "pairs": len(rows),
            "raw_model_responses": len({a for a, _, _ in rows if a not in members}),
        }

    def integrity_check(self) -> str:
        with self._txn(write=False) as conn:
            return conn.execute("PRAGMA integrity_check").fetchone()[0]

    def backup(self, dest: str | os.PathLike | None = None) -> Path:
        """A consistent copy of the whole bank (default: a new file in backup_dir), 0600."""
        return backups.backup(self, dest)

    def restore_backup(self, source: str | os.PathLike) -> Path:
        """Replace the whole bank's content by a backup's (validated first, one transaction);
        returns the backup of the bank as it was, taken inside the same write lock."""
        return backups.restore(self, source)
