"""Shared pieces of the reliability tests: running our own processes, and looking at a bank
file from the outside (raw sqlite3, read-only) so a check never goes through the code it checks.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SHARED = REPO_ROOT / ".." / "shared"

# The response set every reliability bank uses: a few Banking77 intents.
RESPONSES = (
    "card arrival",
    "card payment fee charged",
    "cash withdrawal charge",
    "declined cash withdrawal",
    "lost or stolen card",
    "pending transfer",
    "refund not showing up",
    "request refund",
    "top up reverted",
    "transfer fee charged",
)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: the repo importable without an install, the
    test's isolated CM_DESKTOP_HOME inherited (the autouse fixture sets it in os.environ)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def cm_command(*argv: str) -> list[str]:
    """The real `cm` entry point (the console script calls exactly this), run from the repo
    so the test does not depend on `pip install -e` having put `cm` on PATH."""
    code = "import sys; from cm_desktop.cli.main import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code, *argv]


def script_command(name: str, *argv: str) -> list[str]:
    return [sys.executable, str(HERE / name), *argv]


def raw_connect(path: Path) -> sqlite3.Connection:
    """A read-only connection that bypasses bank_store (WAL readers see committed data)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def integrity_check(path: Path) -> list[str]:
    con = raw_connect(path)
    try:
        return [row[0] for row in con.execute("PRAGMA integrity_check")]
    finally:
        con.close()


def table_snapshot(path: Path) -> dict[str, list[tuple]]:
    """Every row of ratings and counts, sorted: equal snapshots mean an unchanged bank."""
    con = raw_connect(path)
    try:
        snap = {}
        for table in ("ratings", "counts", "profiles"):
            rows = con.execute(f"SELECT * FROM {table}").fetchall()
            snap[table] = sorted(rows, key=repr)
        return snap
    finally:
        con.close()


def counts_match_ratings(bank, profile: str) -> tuple[dict, dict]:
    """(counts as the bank keeps them, counts recomputed from its ratings): must be equal."""
    kept = {k: v for k, v in bank.counts(profile).items() if v}
    recomputed = dict(Counter((r.model_response, r.user_response) for r in bank.ratings(profile)))
    return kept, recomputed


def counts_table_matches_group_by(path: Path) -> tuple[list[tuple], list[tuple]]:
    """The counts table against a GROUP BY over ratings, in raw SQL (same profile_id keys)."""
    con = raw_connect(path)
    try:
        kept = con.execute(
            "SELECT profile_id, model_response, user_response, n FROM counts WHERE n > 0 "
            "ORDER BY 1, 2, 3").fetchall()
        grouped = con.execute(
            "SELECT profile_id, model_response, user_response, COUNT(*) FROM ratings "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").fetchall()
        return kept, grouped
    finally:
        con.close()


def file_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
