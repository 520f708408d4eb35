"""The bank file, its connections and its transactions (the base of DiscrepancyBank).

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
- The file is created 0600 before SQLite opens it; SQLite gives -wal/-shm the same mode. Only a
  regular file (or a new one) is opened: `/dev/null` or a FIFO is refused before SQLite could
  create a journal beside it.
- Opening runs `PRAGMA quick_check` (0.2 s of CPU for 100k ratings, see
  benchmarks/RESULTS.md): a damaged bank is refused with BankDamagedError before anything reads
  or writes it; with check=False (the GUI, which checks in the background) the first write
  runs the check itself, so nothing is ever written into a damaged file. `backups.recover`
  salvages one. quick_check finds broken pages and b-trees, not an index key that was altered
  into another valid key (only the 3x slower integrity_check compares indexes with tables).
- A destructive change (replace import, profile deletion, restore) backs up what it destroys
  inside its own write lock (`destructive_transaction`): no rating committed by another writer
  between the backup and the change can be lost unseen.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Iterator

import sqlite_utils

from .backups import backup_while_locked
from .errors import BankDamagedError, BankError
from .files import create_private_file, make_private_dirs
from .migrations import apply_migrations, up_to_date

BUSY_TIMEOUT_S = 10.0
SYNCHRONOUS = "FULL"


def is_damage(error: sqlite3.DatabaseError) -> bool:
    """SQLite's words for a file whose pages are broken (not: not a database at all)."""
    text = str(error)
    return "malformed" in text or "corrupt" in text


class BankConnection:
    """Opens the bank file and hands each thread its own connection and transactions.

    `backup_dir` is where backups taken before destructive changes go (the app passes its
    backups folder; the default is a `backups` folder beside the bank)."""

    def __init__(self, path: str | os.PathLike, *, backup_dir: str | os.PathLike | None = None,
                 check: bool = True):
        self.path = Path(path).expanduser()
        self.backup_dir = (Path(backup_dir).expanduser() if backup_dir is not None
                           else self.path.parent / "backups")
        self._local = threading.local()
        self._all_lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._savepoints = itertools.count()
        self._verify_lock = threading.Lock()
        self._verified = False
        self._damage: BankDamagedError | None = None
        created = self._create_file()
        self._conn()  # open now: a bad path or a non-bank file fails here, not later
        if check:
            try:
                self.verify()
            except BankDamagedError:
                self.close_all()
                raise
        if created:
            for suffix in ("-wal", "-shm"):
                side = Path(str(self.path) + suffix)
                if side.exists():
                    os.chmod(side, 0o600)

    # ---- the file -------------------------------------------------------------------------------

    def _create_file(self) -> bool:
        """Create the bank file 0600 if missing; True if created. An existing file must be a
        regular file; an empty one (about to become a bank) is made 0600 too."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            info = None
        except OSError as e:
            raise BankError(f"cannot use the bank {self.path}: {e.strerror}") from None
        if info is not None:
            if stat.S_ISDIR(info.st_mode):
                raise BankError(f"{self.path} is a directory, not a bank file")
            if not stat.S_ISREG(info.st_mode):
                raise BankError(f"{self.path} is not a regular file (a device, pipe or socket "
                                "cannot hold a bank)")
            if info.st_size == 0 and stat.S_IMODE(info.st_mode) != 0o600:
                try:
                    os.chmod(self.path, 0o600)
                except OSError as e:
                    raise BankError(f"cannot make {self.path} owner-only: {e.strerror}") from None
            return False
        try:
            make_private_dirs(self.path.parent)
            create_private_file(self.path)
        except FileExistsError:
            return False
        except OSError as e:
            raise BankError(f"cannot create the bank {self.path}: {e.strerror}") from e
        return True

    def verify(self) -> None:
        """Run `PRAGMA quick_check` once; BankDamagedError if the bank is damaged. With
        check=False the caller runs it (the GUI: in the background); until it has passed, the
        first write runs it itself, so nothing is ever written into an unchecked bank."""
        with self._verify_lock:
            if self._damage is not None:
                raise self._damage
            if self._verified:
                return
            try:
                rows = [r[0] for r in self._conn().execute("PRAGMA quick_check")]
            except sqlite3.DatabaseError as e:
                rows = [str(e)]
            if rows != ["ok"]:
                self._damage = BankDamagedError(self.path, rows[0], len(rows))
                raise self._damage
            self._verified = True

    # ---- connections ----------------------------------------------------------------------------

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
            if is_damage(e):
                raise BankDamagedError(self.path, str(e)) from None
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

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transactions ---------------------------------------------------------------------------

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
            if write and not self._verified:
                self.verify()  # writes wait for the damage check (see verify)
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
        except sqlite3.DatabaseError as e:
            if is_damage(e):
                raise BankDamagedError(self.path, str(e)) from None
            raise BankError(f"bank error: {e}") from e
        except sqlite3.Error as e:
            raise BankError(f"bank error: {e}") from e
        except UnicodeEncodeError:
            raise BankError("text is not valid Unicode (a lone surrogate)") from None

    def transaction(self, write: bool = True) -> contextlib.AbstractContextManager:
        """Group several calls into one transaction (all or nothing, one consistent view)."""
        return self._txn(write)

    @contextlib.contextmanager
    def destructive_transaction(self, dest: str | os.PathLike | None = None,
                                *, take_backup: bool = True) -> Iterator[Path | None]:
        """A write transaction whose first act is a backup of the whole bank, taken while the
        write lock is held: what the transaction destroys is exactly what the backup holds.
        Yields the backup's path (None when take_backup is false). Must be the outermost
        transaction of this thread."""
        if getattr(self._local, "txn", None) is not None:
            raise BankError("a destructive change must not run inside another transaction")
        with self._txn(write=True):
            yield backup_while_locked(self, dest) if take_backup else None
