"""DiscrepancyBank: profiles, ratings and transition counts in one SQLite file.

Durability and concurrency choices (why):
- WAL journal, so readers (GUI, engine) never block the one writer and a killed writer leaves a
  database that opens cleanly (SQLite replays or discards the WAL tail).
- synchronous=FULL: each commit is fsynced before the call returns, so a returned rating
  survives a SIGKILL *and* a power loss (NORMAL+WAL survives only the kill); one fsync per
  rating is invisible at human speed, and bulk paths batch into one transaction.
- Writes open with BEGIN IMMEDIATE and a 10 s busy timeout: a second writer (another thread or
  process) waits for the lock instead of failing with "database is locked" mid-transaction.
- One connection per thread (threading.local); every public method is one transaction, and
  `transaction()` groups several calls (imports): nested calls join it as savepoints.
- The file is created 0600 before SQLite opens it; SQLite gives -wal/-shm the same mode.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import sqlite3
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import sqlite_utils

from .conversations import ConversationsMixin
from .errors import BankError, ProfileExistsError, ProfileNotFoundError, RatingNotFoundError
from .guidance import GuidanceMixin
from .migrations import apply_migrations, up_to_date
from .records import (SOURCES, Profile, Rating, TransitionMatrix, check_profile_name,
                      check_rating, check_text, normalise_response, rating_id, response_index,
                      utc_now, validate_responses)

BUSY_TIMEOUT_S = 10.0
SYNCHRONOUS = "FULL"

_RATING_COLUMNS = (
    "id, instance, model_response, user_response, source, strategy, fingerprint, created"
)
_PROFILE_COLUMNS = "id, name, responses, description, fingerprint, created, updated"
_FRESH_FIELDS = frozenset({"instance", "model_response", "user_response", "source", "strategy",
                           "fingerprint", "created"})


class DiscrepancyBank(GuidanceMixin, ConversationsMixin):
    """The user's discrepancy memory bank; see docs/ARCHITECTURE.md for the contract."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        self._local = threading.local()
        self._all_lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._savepoints = itertools.count()
        created = self._create_file()
        self._conn()  # open now: a bad path or a non-bank file fails here, not later
        if created:
            for suffix in ("-wal", "-shm"):
                side = Path(str(self.path) + suffix)
                if side.exists():
                    os.chmod(side, 0o600)

    # ---- connections and transactions -------------------------------------------------------

    def _create_file(self) -> bool:
        if self.path.is_dir():
            raise BankError(f"{self.path} is a directory, not a bank file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return False
        except OSError as e:
            raise BankError(f"cannot create the bank {self.path}: {e.strerror}") from e
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
        finally:
            os.close(fd)
        return True

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open_connection()
            self._local.conn = conn
            self._local.txn = None
            with self._all_lock:
                self._all.append(conn)
        return conn

    def _open_connection(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise BankError(f"the bank {self.path} does not exist (was it moved or deleted?)")
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (BEGIN IMMEDIATE for writes)
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as e:
            raise BankError(f"cannot open the bank {self.path}: {e}") from e
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS}")
            conn.execute("PRAGMA cache_size = -32768")  # 32 MiB: bulk inserts into the id index
            if not getattr(self, "_migrated", False) and not up_to_date(conn):
                db = sqlite_utils.Database(conn)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    apply_migrations(db)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            self._migrated = True
        except sqlite3.DatabaseError as e:
            conn.close()
            raise BankError(f"{self.path} is not a usable CM Desktop bank: {e}") from e
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        """Close this thread's connection (others close their own, or use close_all)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with self._all_lock:
                if conn in self._all:
                    self._all.remove(conn)
            conn.close()

    def close_all(self) -> None:
        """Close every thread's connection; only when no thread is using the bank any more."""
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> "DiscrepancyBank":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _txn(self, write: bool) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        outer = self._local.txn
        try:
            if outer is not None:
                if write and outer == "read":
                    raise BankError("cannot write inside a read-only bank transaction")
                sp = f"sp{next(self._savepoints)}"
                conn.execute(f"SAVEPOINT {sp}")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:  # an I/O error may have ended it already
                        conn.execute(f"ROLLBACK TO {sp}")
                        conn.execute(f"RELEASE {sp}")
                    raise
                conn.execute(f"RELEASE {sp}")
                return
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            self._local.txn = "write" if write else "read"
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            else:
                try:
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:  # never leave this thread's connection mid-write
                        conn.execute("ROLLBACK")
                    raise
            finally:
                self._local.txn = None
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise BankError(f"the bank is busy: another program held it for over "
                                f"{BUSY_TIMEOUT_S:.0f} s ({e})") from e
            raise BankError(f"bank error: {e}") from e
        except sqlite3.Error as e:
            raise BankError(f"bank error: {e}") from e
        except UnicodeEncodeError:
            raise BankError("text is not valid Unicode (a lone surrogate)") from None

    def transaction(self, write: bool = True) -> contextlib.AbstractContextManager:
        """Group several calls into one transaction (all or nothing, one consistent view)."""
        return self._txn(write)

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

    def delete_profile(self, name: str) -> None:
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, name)
            conn.execute("DELETE FROM counts WHERE profile_id = ?", (p.id,))
            conn.execute("DELETE FROM ratings WHERE profile_id = ?", (p.id,))
            conn.execute("DELETE FROM profiles WHERE id = ?", (p.id,))

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
                   fingerprint: str | None = None, created: str | None = None) -> Rating:
        """Record one rating; responses matching a member of R (case/whitespace) are stored as
        that member. Adding the very same rating (same id) twice stores it once."""
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            r = self._fresh_rating(self._members(p), {
                "instance": instance, "model_response": model_response,
                "user_response": user_response, "source": source, "strategy": strategy,
                "fingerprint": fingerprint, "created": created})
            self._insert(conn, p, [r])
            return r

    @staticmethod
    def _members(p: Profile) -> dict[str, str]:
        return response_index(json.dumps(list(p.responses), ensure_ascii=False))[2]

    @staticmethod
    def _fresh_rating(members: dict[str, str], d: dict[str, Any]) -> Rating:
        """A new rating from a dict: checked, responses mapped onto R, id computed.
        Written flat because bulk adds call it once per rating."""
        if not _FRESH_FIELDS.issuperset(d):
            unknown = sorted(set(d) - _FRESH_FIELDS)
            raise BankError(f"unknown rating field(s): {', '.join(unknown)}")
        instance = d.get("instance", "")
        if type(instance) is not str:
            check_text(instance, "instance")
        pair = []
        for key in ("model_response", "user_response"):
            value = d.get(key)
            if type(value) is not str:
                check_text(value, key)
            collapsed = " ".join(value.split())
            if not collapsed:
                raise BankError(f"{key} must not be empty")
            pair.append(members.get(collapsed.casefold(), collapsed))
        source = d.get("source") or "rated"
        if source not in SOURCES:
            raise BankError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
        strategy, fingerprint = d.get("strategy"), d.get("fingerprint")
        for what, value in (("strategy", strategy), ("fingerprint", fingerprint)):
            if value is not None and type(value) is not str:
                check_text(value, what)
        created = d.get("created")
        if created is None:
            created = utc_now()
        else:
            try:
                dt.datetime.fromisoformat(check_text(created, "created"))
            except ValueError:
                raise BankError(f"created {created!r} is not an ISO-8601 time") from None
        rid = rating_id(instance, pair[0], pair[1], source, strategy, created)
        return Rating(rid, instance, pair[0], pair[1], source, strategy, fingerprint, created)

    def _insert(self, conn: sqlite3.Connection, p: Profile, ratings: Sequence[Rating]) -> int:
        """Insert (skipping ids already present) and fold the new rows into counts."""
        if not ratings:
            return 0
        before = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM ratings").fetchone()[0]
        changes_before = conn.total_changes
        conn.executemany(
            f"INSERT OR IGNORE INTO ratings (profile_id, {_RATING_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((p.id, r.id, r.instance, r.model_response, r.user_response, r.source, r.strategy,
              r.fingerprint, r.created) for r in ratings))
        added = conn.total_changes - changes_before
        # One aggregate statement per batch: new rows are exactly those with seq > before
        # (rowids grow while we hold the write lock).
        conn.execute(
            "INSERT INTO counts (profile_id, model_response, user_response, n)"
            " SELECT profile_id, model_response, user_response, COUNT(*) FROM ratings"
            " WHERE seq > ? GROUP BY profile_id, model_response, user_response"
            " ON CONFLICT (profile_id, model_response, user_response)"
            " DO UPDATE SET n = n + excluded.n", (before,))
        return added

    def add_ratings(self, profile: str, ratings: Iterable[Rating | dict]) -> int:
        """Add many ratings in one transaction; returns how many were new.

        Rating objects and dicts carrying an "id" are existing ratings: stored verbatim and
        their id must match their content. Dicts without an id are fresh ratings (as add_rating).
        """
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            members = self._members(p)
            checked: list[Rating] = []
            for i, item in enumerate(ratings):
                try:
                    if isinstance(item, Rating):
                        checked.append(check_rating(item))
                    elif isinstance(item, dict) and "id" in item:
                        checked.append(check_rating(Rating(**item)))
                    elif isinstance(item, dict):
                        checked.append(self._fresh_rating(members, item))
                    else:
                        raise BankError(f"expected a Rating or a dict, not {type(item).__name__}")
                except TypeError as e:
                    raise BankError(f"rating {i}: {e}") from None
                except BankError as e:
                    raise BankError(f"rating {i}: {e}") from None
            return self._insert(conn, p, checked)

    def _add_parsed_ratings(self, profile: str, ratings: Sequence[Rating]) -> int:
        """add_ratings for ratings read_bank_file built and checked (ids computed from their
        content there): skips a second hash per rating in bulk imports. bank_store only."""
        with self._txn(write=True) as conn:
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
            return [Rating(*row) for row in conn.execute(sql + " ORDER BY seq", args)]

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
        if not isinstance(n, int) or n < 1:
            raise BankError(f"undo needs a positive number of ratings, not {n!r}")
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

    def restore_ratings(self, profile: str, ratings: list[Rating]) -> int:
        """Put removed ratings back (same ids); returns how many were added."""
        return self.add_ratings(profile, ratings)

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

    # ---- embeddings cache -----------------------------------------------------------------------

    def set_embeddings(self, profile: str, vectors: dict[str, np.ndarray], model: str) -> int:
        """Store float32 embeddings by rating id; ids no longer present are skipped.
        Returns how many ratings were updated."""
        check_text(model, "embedding model")
        blobs = []
        dim = None
        for rid, vec in vectors.items():
            arr = np.asarray(vec, dtype=np.float32)
            if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
                raise BankError(f"embedding for rating {rid!r} must be a finite 1-D vector")
            if dim is not None and arr.size != dim:
                raise BankError(f"embedding for rating {rid!r} has {arr.size} values, "
                                f"the others {dim}")
            dim = arr.size
            blobs.append((arr.tobytes(), model, rid))
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            before = conn.total_changes
            conn.executemany("UPDATE ratings SET embedding = ?, embedding_model = ?"
                             f" WHERE profile_id = {int(p.id)} AND id = ?", blobs)
            return conn.total_changes - before

    def embeddings(self, profile: str, model: str) -> tuple[list[str], np.ndarray]:
        with self._txn(write=False) as conn:
            p = self._get_profile(conn, profile)
            rows = conn.execute("SELECT id, embedding FROM ratings WHERE profile_id = ? AND"
                                " embedding_model = ? AND embedding IS NOT NULL ORDER BY seq",
                                (p.id, model)).fetchall()
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        sizes = {len(blob) for _, blob in rows}
        if len(sizes) != 1:
            raise BankError(f"stored embeddings for model {model!r} differ in size; "
                            "recompute them")
        matrix = np.frombuffer(b"".join(blob for _, blob in rows), dtype=np.float32)
        return [rid for rid, _ in rows], matrix.reshape(len(rows), -1).copy()

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
        """A consistent copy of the whole bank (sqlite online backup), created 0600."""
        if dest is None:
            from cm_desktop.paths import backups_dir  # lazy: the app decides where backups go

            stamp = utc_now().replace(":", "").replace("-", "").replace("+0000", "Z")
            dest = backups_dir() / f"{self.path.stem}-{stamp}.sqlite3"
        dest = Path(dest).expanduser()
        try:
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(dest, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.fchmod(fd, 0o600)
            os.close(fd)
        except FileExistsError:
            raise BankError(f"backup {dest} already exists; choose another name") from None
        except OSError as e:
            raise BankError(f"cannot create backup {dest}: {e.strerror}") from e
        target = sqlite3.connect(str(dest))
        try:
            self._conn().backup(target)
            # a backup is one self-contained file: no -wal beside it
            target.execute("PRAGMA journal_mode = DELETE")
        except sqlite3.Error as e:
            target.close()
            dest.unlink(missing_ok=True)
            raise BankError(f"backup failed: {e}") from e
        target.close()
        return dest

    def restore_backup(self, source: str | os.PathLike) -> None:
        """Replace the whole bank's content by a backup's (one step; validated first)."""
        source = Path(source).expanduser()
        if not source.is_file():
            raise BankError(f"backup {source} does not exist")
        try:
            src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
            try:
                if src.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                    raise BankError(f"backup {source} is damaged (integrity check failed)")
                names = {r[0] for r in src.execute("SELECT name FROM sqlite_master")}
                if not {"profiles", "ratings", "counts", "_sqlite_migrations"} <= names:
                    raise BankError(f"{source} is not a CM Desktop bank backup")
                src.backup(self._conn())
            finally:
                src.close()
            # the backup may predate newer migrations
            with self._txn(write=True) as conn:
                apply_migrations(sqlite_utils.Database(conn))
        except sqlite3.Error as e:
            raise BankError(f"cannot restore from {source}: {e}") from e
