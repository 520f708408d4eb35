"""The bank's schema as numbered migrations (sqlite-utils' migrations API).

Rules: migrations run in list order and each is recorded in `_sqlite_migrations` in the same
transaction as its changes; a shipped migration is never edited — a change is a new, higher number.
A bank that records a migration this code does not know was written by a newer version of the
app and is refused rather than half-understood.
"""

from __future__ import annotations

import sqlite3

import sqlite_utils
from sqlite_utils.migrations import Migrations

from .errors import BankError

MIGRATION_SET = "cm_desktop_bank"

migrations = Migrations(MIGRATION_SET)


@migrations(name="0001_initial")
def m0001_initial(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE profiles (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            responses TEXT NOT NULL,          -- JSON list, the ordered response set R
            description TEXT NOT NULL DEFAULT '',
            fingerprint TEXT,
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        )
        """
    )
    # seq orders ratings (oldest first, undo takes the newest); id is the content hash, unique
    # within a profile so a re-import never duplicates.
    db.execute(
        """
        CREATE TABLE ratings (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL,
            profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
            instance TEXT NOT NULL,
            model_response TEXT NOT NULL,
            user_response TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('rated', 'estimated', 'imported')),
            strategy TEXT,
            fingerprint TEXT,
            created TEXT NOT NULL,
            embedding BLOB,
            embedding_model TEXT,
            UNIQUE (profile_id, id)
        )
        """
    )
    # No index on (profile_id, y', y): it made bulk inserts ~1.5x slower, and remove_pair (the
    # only user) scans one profile's ratings in milliseconds even at 100k.
    db.execute("CREATE INDEX ratings_profile_seq ON ratings(profile_id, seq)")
    # counts == SELECT profile_id, model_response, user_response, COUNT(*) FROM ratings GROUP BY
    # 1, 2, 3; kept so by the store in the same transaction as every ratings change.
    db.execute(
        """
        CREATE TABLE counts (
            profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
            model_response TEXT NOT NULL,
            user_response TEXT NOT NULL,
            n INTEGER NOT NULL CHECK (n > 0),
            PRIMARY KEY (profile_id, model_response, user_response)
        ) WITHOUT ROWID
        """
    )


@migrations(name="0002_guidance")
def m0002_guidance(db: sqlite_utils.Database) -> None:
    # What a reply for one response (one meaning) must say or do, written by the user. Keyed by
    # the response's text as it stands in the profile's response set; a response removed from the
    # set keeps its guidance (harmless, and back if the response returns).
    db.execute(
        """
        CREATE TABLE guidance (
            profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
            response TEXT NOT NULL,
            text TEXT NOT NULL CHECK (length(text) > 0),
            updated TEXT NOT NULL,
            PRIMARY KEY (profile_id, response)
        ) WITHOUT ROWID
        """
    )


@migrations(name="0003_conversations")
def m0003_conversations(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
            title TEXT NOT NULL,
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        )
        """
    )
    # AUTOINCREMENT: an id is never reused, so a deleted conversation can be put back (undo) with
    # its own ids even after new ones were created.
    db.execute("CREATE INDEX conversations_profile_updated ON conversations(profile_id, updated)")
    # One row per turn. For an assistant turn: the meaning CM chose (response), its decision
    # trace (JSON) and the id of the rating a thumbs up/down produced. rating_id is no foreign
    # key on purpose: deleting a conversation never deletes the ratings it produced.
    db.execute(
        """
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            text TEXT NOT NULL,
            response TEXT,
            trace TEXT,
            rating_id TEXT,
            created TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX messages_conversation ON messages(conversation_id, id)")


@migrations(name="0004_rate_state")
def m0004_rate_state(db: sqlite_utils.Database) -> None:
    # Queries the user skipped in the Rate view, per profile, keyed by the query text's matching
    # form (case and whitespace ignored): after a restart they wait at the end of the queue.
    db.execute(
        """
        CREATE TABLE skipped_queries (
            profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
            query_key TEXT NOT NULL,
            skipped TEXT NOT NULL,
            PRIMARY KEY (profile_id, query_key)
        ) WITHOUT ROWID
        """
    )
    # The user's own learning curve, one row per evaluated rating, as a cache: `position` is the
    # rating's place among the profile's ratings (oldest first), `chain` a hash of the ids of that
    # rating and every one before it, so a row is valid exactly while the bank's history up to it
    # is unchanged. `rule` names how the row was computed (a new rule never reads old rows).
    db.execute(
        """
        CREATE TABLE curve_points (
            profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
            rule TEXT NOT NULL,
            position INTEGER NOT NULL CHECK (position >= 0),
            chain TEXT NOT NULL,
            model_agrees INTEGER NOT NULL CHECK (model_agrees IN (0, 1)),
            cm_agrees INTEGER NOT NULL CHECK (cm_agrees IN (0, 1)),
            PRIMARY KEY (profile_id, rule, position)
        ) WITHOUT ROWID
        """
    )


@migrations(name="0005_model_distributions")
def m0005_model_distributions(db: sqlite_utils.Database) -> None:
    # The model's distribution p(y'|x) over the response set when the rating was made (float32,
    # one value per response, in the profile's order), and a digest of that response set: the
    # evidence rule tunes on what the model believed, not only on its argmax y'. A rating made
    # before this migration, imported, or made under another response set has none (NULL, or a
    # digest that no longer matches) and falls back to y' alone.
    db.execute("ALTER TABLE ratings ADD COLUMN model_distribution BLOB")
    db.execute("ALTER TABLE ratings ADD COLUMN model_distribution_key TEXT")


def known_names() -> list[str]:
    return [m.name for m in migrations._migrations]


def up_to_date(conn) -> bool:
    """True when every known migration, and no other, is recorded: opening then needs no write
    lock (a reader must not wait behind a long import just to learn there is nothing to do)."""
    try:
        rows = conn.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = ?",
                            (MIGRATION_SET,)).fetchall()
    except sqlite3.OperationalError:  # no migrations table yet: a new (or foreign) file
        return False
    return sorted(r[0] for r in rows) == sorted(known_names())


def apply_migrations(db: sqlite_utils.Database) -> list[str]:
    """Apply pending migrations; the caller holds the write lock. Returns the names applied."""
    user_tables = {t for t in db.table_names() if not t.startswith("sqlite_")}
    applied = [m.name for m in migrations.applied(db)]
    if user_tables and "_sqlite_migrations" not in user_tables:
        raise BankError(
            f"{db.conn.execute('PRAGMA database_list').fetchone()[2]} is an SQLite database "
            "but not a CM Desktop bank"
        )
    unknown = [name for name in applied if name not in known_names()]
    if unknown:
        raise BankError(
            "this bank was written by a newer version of CM Desktop "
            f"(unknown schema migration {unknown[0]!r}); update the app to open it"
        )
    pending = [m.name for m in migrations.pending(db)]
    if pending:
        migrations.apply(db)
    return pending
