"""Backups of the whole bank, restoring one, and recovering a damaged bank.

- A backup is SQLite's online backup of the bank into a temporary hidden file beside its
  target (`.NAME.PID.partial`), switched to a self-contained rollback journal, checked with
  `quick_check`, fsynced and only then given its real name: a process killed mid-backup leaves
  no file under a backup's name, so no incomplete backup is ever listed or restored.
- Before a destructive change the backup is taken while that change's write lock is held
  (`backup_while_locked`, through a second read-only connection: WAL lets it read the last
  commit while the lock stops any other writer), so it holds exactly what the change destroys.
- Restore validates the backup first (a regular file that opens read-only, passes
  `quick_check`, has the bank's tables and only migrations this version knows), brings a copy
  of it up to the current schema, and only then, in one write transaction, backs up the bank
  and replaces every table's rows. Any failure leaves the bank exactly as it was.
- Recover copies what SQLite can still read from a damaged bank into a new bank file, table by
  table in rowid order, skipping past pages that cannot be read; counts are rebuilt from the
  ratings. The damaged file is not touched.
"""

from __future__ import annotations

import os
import re
import sqlite3
import urllib.parse
from pathlib import Path

import sqlite_utils

from .errors import BankError
from .files import create_private_file, make_private_dirs, temporary_name
from .migrations import apply_migrations, known_names
from .records import utc_now

BANK_TABLES = {"profiles", "ratings", "counts", "_sqlite_migrations"}
_PARTIAL = re.compile(r"^\..+\.(\d+)\.partial(-journal)?$")


def default_backup_path(bank) -> Path:
    stamp = utc_now().replace(":", "").replace("-", "").replace("+0000", "Z")
    return bank.backup_dir / f"{bank.path.stem}-{stamp}.sqlite3"


def list_backups(folder: str | os.PathLike) -> list[Path]:
    """The complete backups in `folder`, oldest first (partial files are never listed)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob("*.sqlite3") if not p.name.startswith(".")),
                  key=lambda p: p.name)


def _remove_stale_partials(folder: Path) -> None:
    """Partial backups left by a killed process (its pid no longer runs) are removed."""
    for p in folder.glob(".*.partial*"):
        m = _PARTIAL.match(p.name)
        if not m:
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            p.unlink(missing_ok=True)
        except (PermissionError, OverflowError, ValueError):
            pass


def _read_only_uri(path: Path) -> str:
    return "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_backup(source: sqlite3.Connection, dest: str | os.PathLike) -> Path:
    """Copy the database behind `source` into the new file `dest` (0600), complete or not at
    all under that name."""
    dest = Path(dest).expanduser()
    if not dest.name:
        raise BankError("a backup needs a file name")
    try:
        make_private_dirs(dest.parent)
        _remove_stale_partials(dest.parent)
        if dest.exists():
            raise BankError(f"backup {dest} already exists; choose another name")
        tmp = temporary_name(dest)
        tmp.unlink(missing_ok=True)
        create_private_file(tmp)
    except OSError as e:
        raise BankError(f"cannot create backup {dest}: {e.strerror}") from e
    try:
        target = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            source.backup(target)
            # a backup is one self-contained file: no -wal beside it
            target.execute("PRAGMA journal_mode = DELETE").fetchone()
            check = target.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            target.close()
        if check != "ok":
            raise BankError(f"backup failed: the copy does not pass SQLite's check ({check})")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        try:
            os.link(tmp, dest)  # fails if dest appeared meanwhile: never overwrite a backup
            tmp.unlink()
        except FileExistsError:
            raise BankError(f"backup {dest} already exists; choose another name") from None
        except OSError:
            os.replace(tmp, dest)  # a file system without hard links
        _fsync_folder(dest.parent)
    except sqlite3.Error as e:
        raise BankError(f"backup to {dest} failed: {e}") from e
    except OSError as e:
        raise BankError(f"backup to {dest} failed: {e.strerror}") from e
    finally:
        for leftover in (tmp, Path(str(tmp) + "-journal")):
            leftover.unlink(missing_ok=True)
    return dest


def backup(bank, dest: str | os.PathLike | None = None) -> Path:
    """A consistent copy of the whole bank (it does not stop other readers or writers)."""
    return write_backup(bank._conn(), dest if dest is not None else default_backup_path(bank))


def backup_while_locked(bank, dest: str | os.PathLike | None = None) -> Path:
    """A backup taken while this thread holds the bank's write lock (see the module text)."""
    if getattr(bank._local, "txn", None) != "write":
        raise BankError("backup_while_locked needs the bank's write lock")
    reader = sqlite3.connect(_read_only_uri(bank.path), uri=True, isolation_level=None)
    try:
        return write_backup(reader, dest if dest is not None else default_backup_path(bank))
    finally:
        reader.close()


# ---- restore -------------------------------------------------------------------------------------

def check_backup(source: str | os.PathLike) -> Path:
    """Raise BankError unless `source` is a complete backup this version can restore."""
    source = Path(source).expanduser()
    if not source.is_file():
        raise BankError(f"backup {source} not found (or not a regular file)")
    if Path(str(source) + "-journal").exists():
        raise BankError(f"backup {source} is incomplete (a -journal lies beside it: it was "
                        "being written when its writer stopped)")
    try:
        src = sqlite3.connect(_read_only_uri(source), uri=True)
        try:
            rows = src.execute("PRAGMA quick_check").fetchall()
            if [r[0] for r in rows] != ["ok"]:
                raise BankError(f"backup {source} is damaged (SQLite's check: {rows[0][0]})")
            names = {r[0] for r in src.execute("SELECT name FROM sqlite_master")}
            if not BANK_TABLES <= names:
                raise BankError(f"{source} is not a CM Desktop bank backup")
            applied = [r[0] for r in src.execute("SELECT name FROM _sqlite_migrations")]
        finally:
            src.close()
    except sqlite3.Error as e:
        raise BankError(f"backup {source} cannot be read: {e}") from None
    unknown = [name for name in applied if name not in known_names()]
    if unknown:
        raise BankError(f"backup {source} was written by a newer version of CM Desktop "
                        f"(unknown schema migration {unknown[0]!r}); update the app to "
                        "restore it")
    return source


def _staged_copy(bank, source: Path) -> Path:
    """A private copy of the backup brought up to the current schema (the bank untouched)."""
    make_private_dirs(bank.backup_dir)
    staging = bank.backup_dir / f".restore-{os.getpid()}-{utc_now().replace(':', '')}.partial"
    create_private_file(staging)
    src = sqlite3.connect(_read_only_uri(source), uri=True)
    target = sqlite3.connect(str(staging), isolation_level=None)
    try:
        src.backup(target)
        target.execute("PRAGMA journal_mode = DELETE").fetchone()
        target.execute("BEGIN IMMEDIATE")
        apply_migrations(sqlite_utils.Database(target))
        target.execute("COMMIT")
        if target.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise BankError(f"backup {source} does not pass SQLite's check once migrated")
    finally:
        target.close()
        src.close()
    return staging


def _user_tables(conn: sqlite3.Connection, schema: str) -> list[str]:
    return [r[0] for r in conn.execute(
        f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'"
        " AND name NOT LIKE 'sqlite_%' ORDER BY name")]


def restore(bank, source: str | os.PathLike) -> Path:
    """Replace the bank's content by a backup's; returns the backup of the bank as it was
    (taken inside the same write lock). On any failure the bank is unchanged."""
    source = check_backup(source)
    if getattr(bank._local, "txn", None) is not None:
        raise BankError("restore must not run inside another bank transaction")
    try:
        staging = _staged_copy(bank, source)
    except (sqlite3.Error, OSError) as e:
        raise BankError(f"backup {source} cannot be restored, the bank was not changed: "
                        f"{e}") from None
    conn = bank._conn()
    safety: Path | None = None
    try:
        conn.execute("ATTACH DATABASE ? AS incoming", (str(staging),))
        try:
            with bank.destructive_transaction() as safety:
                conn.execute("PRAGMA defer_foreign_keys = ON")
                tables = _user_tables(conn, "main")
                incoming = set(_user_tables(conn, "incoming"))
                for t in tables:
                    conn.execute(f'DELETE FROM main."{t}"')
                for t in tables:
                    if t not in incoming:
                        continue
                    cols = ", ".join(f'"{r[1]}"' for r in
                                     conn.execute(f'PRAGMA main.table_info("{t}")'))
                    conn.execute(f'INSERT INTO main."{t}" ({cols}) SELECT {cols} '
                                 f'FROM incoming."{t}"')
                seq = "SELECT 1 FROM {0}.sqlite_master WHERE name = 'sqlite_sequence'"
                if conn.execute(seq.format("main")).fetchone():
                    conn.execute("DELETE FROM main.sqlite_sequence")
                    if conn.execute(seq.format("incoming")).fetchone():
                        conn.execute("INSERT INTO main.sqlite_sequence (name, seq)"
                                     " SELECT name, seq FROM incoming.sqlite_sequence")
        finally:
            conn.execute("DETACH DATABASE incoming")
    except BankError as e:
        kept = f"; a backup of the bank as it was: {safety}" if safety else ""
        raise BankError(f"restoring {source} failed and the bank was not changed: "
                        f"{e}{kept}") from None
    finally:
        staging.unlink(missing_ok=True)
        Path(str(staging) + "-journal").unlink(missing_ok=True)
    return safety


# ---- recover ------------------------------------------------------------------------------------

def _readable_rows(src: sqlite3.Connection, table: str, cols: str, rowid: bool):
    """Rows of `table` that can still be read. A rowid table is read in rowid order, and a
    read error skips ahead (doubling the jump) to the next readable rows."""
    if not rowid:
        try:
            yield from src.execute(f'SELECT {cols} FROM "{table}"')
        except sqlite3.DatabaseError:
            return
        return
    last, jump = -(2 ** 63), 1
    while True:
        try:
            cursor = src.execute(f'SELECT rowid, {cols} FROM "{table}" WHERE rowid > ?'
                                 " ORDER BY rowid", (last,))
            for row in cursor:
                last, jump = row[0], 1
                yield row[1:]
            return
        except sqlite3.DatabaseError:
            if last >= 2 ** 62:
                return
            last = max(last, 0) + jump
            jump *= 2


def recover(damaged: str | os.PathLike, dest: str | os.PathLike) -> dict[str, int]:
    """Copy what can be read from a damaged bank into a new bank at `dest`; returns rows
    copied per table. `damaged` is only read."""
    damaged, dest = Path(damaged).expanduser(), Path(dest).expanduser()
    if not damaged.is_file():
        raise BankError(f"{damaged} is not a bank file")
    make_private_dirs(dest.parent)
    if dest.exists():
        raise BankError(f"{dest} already exists; choose another name")
    tmp = temporary_name(dest)
    tmp.unlink(missing_ok=True)
    create_private_file(tmp)
    copied: dict[str, int] = {}
    try:
        out = sqlite3.connect(str(tmp), isolation_level=None)
        src = sqlite3.connect(_read_only_uri(damaged), uri=True)
        try:
            out.execute("PRAGMA foreign_keys = ON")  # an orphan (its parent lost) is dropped
            out.execute("BEGIN IMMEDIATE")
            apply_migrations(sqlite_utils.Database(out))
            try:
                have = {r[0] for r in src.execute("SELECT name FROM sqlite_master")}
            except sqlite3.DatabaseError as e:
                raise BankError(f"{damaged} is too damaged to read its list of tables: "
                                f"{e}") from None
            # parents first (profiles, conversations) so their children's keys resolve
            order = ["profiles", "conversations"]
            tables = order + [t for t in _user_tables(out, "main") if t not in order]
            for table in tables:
                if table in ("counts", "_sqlite_migrations") or table not in have:
                    continue
                info = list(out.execute(f'PRAGMA table_info("{table}")'))
                src_cols = {r[1] for r in src.execute(f'PRAGMA table_info("{table}")')}
                names = [r[1] for r in info if r[1] in src_cols]
                cols = ", ".join(f'"{n}"' for n in names)
                marks = ", ".join("?" for _ in names)
                without_rowid = out.execute(
                    "SELECT sql FROM sqlite_master WHERE name = ?",
                    (table,)).fetchone()[0].upper().rstrip().endswith("WITHOUT ROWID")
                n = 0
                for row in _readable_rows(src, table, cols, rowid=not without_rowid):
                    try:
                        out.execute(f'INSERT OR IGNORE INTO "{table}" ({cols}) VALUES ({marks})',
                                    row)
                        n += 1
                    except sqlite3.Error:
                        continue  # a row that breaks a constraint (its parent was lost)
                copied[table] = n
            out.execute("INSERT INTO counts (profile_id, model_response, user_response, n)"
                        " SELECT profile_id, model_response, user_response, COUNT(*)"
                        " FROM ratings GROUP BY 1, 2, 3")
            out.execute("COMMIT")
            if out.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise BankError("the recovered copy does not pass SQLite's check")
        finally:
            src.close()
            out.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except sqlite3.Error as e:
        raise BankError(f"recovering {damaged} failed: {e}") from None
    finally:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + "-journal").unlink(missing_ok=True)
    return copied
