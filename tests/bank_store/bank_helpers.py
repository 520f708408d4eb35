"""Helpers for the bank_store tests: look at a bank file from outside, with raw sqlite3."""

from __future__ import annotations

import sqlite3
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared"

# A handful of Banking77 intents: small enough to reason about in a test.
SMALL_R = ("card arrival", "card payment fee charged", "cash withdrawal charge",
           "lost or stolen card", "pending transfer", "request refund")


def raw_rows(path: Path) -> dict[str, list[tuple]]:
    """Every row of the bank's tables, sorted: equal results mean an unchanged bank."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in ("profiles", "ratings", "counts")}
    finally:
        con.close()


def counts_equal_group_by(path: Path) -> bool:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        kept = con.execute("SELECT profile_id, model_response, user_response, n FROM counts"
                           " ORDER BY 1, 2, 3").fetchall()
        grouped = con.execute("SELECT profile_id, model_response, user_response, COUNT(*)"
                              " FROM ratings GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").fetchall()
        return kept == grouped
    finally:
        con.close()
