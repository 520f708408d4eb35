"""What the Rate view keeps per profile beside the ratings: the queries the user skipped, and the
cached points of the user's own learning curve.

Skipped queries are kept by their matching form (case and whitespace ignored, as responses are
matched), oldest first, so after a restart they wait at the end of the queue. Curve points are a
cache of a computation done above this package (`cm_desktop.cm.user_curve`): rows are stored and
read back as they are; what makes a row valid (its `chain`) is the caller's to check.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

from .errors import BankError
from .records import check_text, normalise_response, utc_now

MAX_QUERY_KEY_CHARS = 20_000     # a query longer than this is not one a person skips by hand
MAX_RULE_CHARS = 200


class CurveRow(NamedTuple):
    """One evaluated rating of the user's curve (see migration 0004)."""
    position: int          # the rating's place among the profile's ratings, oldest first, from 0
    chain: str             # hash of the ids of this rating and every one before it
    model_agrees: bool     # the model's y' was what the user meant
    cm_agrees: bool        # CM, with the ratings before this one, would have chosen it


def query_key(query: object) -> str:
    """The stored form of a skipped query: case and whitespace ignored, bounded."""
    key = normalise_response(check_text(query, "query"))
    if len(key) > MAX_QUERY_KEY_CHARS:
        raise BankError(f"query is {len(key)} characters; at most {MAX_QUERY_KEY_CHARS}")
    return key


def _check_rule(rule: object) -> str:
    rule = check_text(rule, "curve rule")
    if len(rule) > MAX_RULE_CHARS:
        raise BankError(f"curve rule is {len(rule)} characters; at most {MAX_RULE_CHARS}")
    return rule


class RateStateMixin:
    """DiscrepancyBank's skipped-query and curve-cache methods (uses its _txn and _get_profile)."""

    # ---- skipped queries ----------------------------------------------------------------------
    def skip_query(self, profile: str, query: str) -> bool:
        """Remember that the user skipped `query`; False if it was already skipped."""
        key = query_key(query)
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            before = conn.total_changes
            conn.execute("INSERT OR IGNORE INTO skipped_queries (profile_id, query_key, skipped)"
                         " VALUES (?, ?, ?)", (p.id, key, utc_now()))
            return conn.total_changes > before

    def unskip_query(self, profile: str, query: str) -> bool:
        """Forget a skip; False if the query was not skipped."""
        key = query_key(query)
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            before = conn.total_changes
            conn.execute("DELETE FROM skipped_queries WHERE profile_id = ? AND query_key = ?",
                         (p.id, key))
            return conn.total_changes > before

    def skipped_queries(self, profile: str) -> list[str]:
        """The skipped queries' matching forms (`query_key`), oldest skip first."""
        with self._txn(write=False) as conn:
            p = self._get_profile(conn, profile)
            return [k for (k,) in conn.execute(
                "SELECT query_key FROM skipped_queries WHERE profile_id = ?"
                " ORDER BY skipped, query_key", (p.id,))]

    # ---- the user's curve (a cache) ----------------------------------------------------------
    def curve_rows(self, profile: str, rule: str) -> list[CurveRow]:
        """The cached rows computed by `rule`, by position."""
        rule = _check_rule(rule)
        with self._txn(write=False) as conn:
            p = self._get_profile(conn, profile)
            rows = conn.execute("SELECT position, chain, model_agrees, cm_agrees FROM curve_points"
                                " WHERE profile_id = ? AND rule = ? ORDER BY position",
                                (p.id, rule)).fetchall()
        return [CurveRow(int(pos), chain, bool(m), bool(c)) for pos, chain, m, c in rows]

    def store_curve_rows(self, profile: str, rule: str, rows: Iterable[CurveRow],
                         *, keep_before: int) -> int:
        """Replace the cache from position `keep_before` on with `rows` (one transaction); rows
        of any other rule are dropped (a new rule never reads them). Returns the rows stored."""
        rule = _check_rule(rule)
        if type(keep_before) is not int or keep_before < 0:
            raise BankError("keep_before must be a non-negative integer")
        values = []
        for row in rows:
            pos, chain, m, c = row
            if type(pos) is not int or pos < keep_before:
                raise BankError(f"curve row position {pos!r} is not an integer >= {keep_before}")
            values.append((pos, check_text(chain, "curve chain"), int(bool(m)), int(bool(c))))
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            conn.execute("DELETE FROM curve_points WHERE profile_id = ? AND"
                         " (rule != ? OR position >= ?)", (p.id, rule, keep_before))
            conn.executemany("INSERT INTO curve_points (profile_id, rule, position, chain,"
                             " model_agrees, cm_agrees) VALUES (?, ?, ?, ?, ?, ?)",
                             [(p.id, rule) + v for v in values])
        return len(values)
