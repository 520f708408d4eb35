"""A damaged bank is refused when it opens (one clear line, non-zero exit, nothing written),
and `cm bank recover` salvages what SQLite can still read into a new file."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from reliability_helpers import (RESPONSES, cm_command, counts_table_matches_group_by,
                                 integrity_check, raw_connect, subprocess_env)


def _damaged_bank(tmp_path: Path) -> tuple[Path, list[str]]:
    """A bank of 2,000 ratings where four bytes of an index page's header were overwritten
    (its free-space bookkeeping): SQLite's checks fail, yet the pages most commands read are
    intact, so an unchecked bank would still be read and written. The tables are intact."""
    from bank_store import DiscrepancyBank

    path = tmp_path / "bank.sqlite3"
    bank = DiscrepancyBank(path)
    bank.create_profile("P", RESPONSES)
    bank.add_ratings("P", [{"instance": f"message {i}", "model_response": RESPONSES[i % 10],
                            "user_response": RESPONSES[(i * 3) % 10]} for i in range(2000)])
    ids = [r.id for r in bank.ratings("P")]
    bank.close()  # the last connection checkpoints the WAL into the file
    con = sqlite3.connect(path)
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    root = con.execute("SELECT rootpage FROM sqlite_master"
                       " WHERE name = 'sqlite_autoindex_ratings_1'").fetchone()[0]
    con.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size)
        header = f.read(12)
        assert header[0] == 2, "the id index's root is an interior page at this size"
        leaf = int.from_bytes(header[8:12], "big")  # its right-most child, a leaf
        f.seek((leaf - 1) * page_size + 5)
        f.write(b"\xff\xff\xff\xff")
    con = raw_connect(path)
    try:
        assert con.execute("PRAGMA quick_check").fetchone()[0] != "ok"
    finally:
        con.close()
    return path, ids


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("argv", [
    ["bank", "show", "--profile", "P"],
    ["bank", "undo", "--profile", "P"],
    ["bank", "import", "PAPER", "--profile", "P"],
    ["profile", "list"],
])
def test_commands_refuse_a_damaged_bank_and_write_nothing(tmp_path, argv):
    path, _ = _damaged_bank(tmp_path)
    paper = tmp_path / "paper.json"
    paper.write_text(json.dumps({RESPONSES[0]: [RESPONSES[1]]}), encoding="utf-8")
    before = _digest(path)
    argv = [str(paper) if a == "PAPER" else a for a in argv]
    done = subprocess.run(cm_command("--bank", str(path), *argv), capture_output=True,
                          text=True, env=subprocess_env(), timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "is damaged" in lines[0] and "cm bank recover" in lines[0], lines[0]
    assert _digest(path) == before


def test_cm_bank_recover_salvages_every_rating_and_keeps_the_damaged_file(tmp_path):
    path, ids = _damaged_bank(tmp_path)
    before = _digest(path)
    out = tmp_path / "recovered.sqlite3"
    done = subprocess.run(cm_command("--bank", str(path), "bank", "recover", "--to", str(out)),
                          capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "recovered 2000 ratings" in done.stdout
    assert _digest(path) == before
    assert integrity_check(out) == ["ok"]
    con = raw_connect(out)
    try:
        assert [r[0] for r in con.execute("SELECT id FROM ratings ORDER BY seq")] == ids
    finally:
        con.close()
    table, group_by = counts_table_matches_group_by(out)
    assert table == group_by
    shown = subprocess.run(cm_command("--bank", str(out), "bank", "show", "--profile", "P"),
                           capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert shown.returncode == 0 and shown.stdout.startswith("2000 ratings"), shown.stderr


def test_the_api_refuses_a_damaged_bank_with_one_error(tmp_path):
    from bank_store import BankDamagedError, DiscrepancyBank

    path, _ = _damaged_bank(tmp_path)
    with pytest.raises(BankDamagedError, match="is damaged"):
        DiscrepancyBank(path)
