"""Destructive changes back up what they destroy inside their own write lock; a restore that
fails leaves the bank exactly as it was; a backup killed part way is never left under a
backup's name."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reliability_helpers import (RESPONSES, cm_command, integrity_check, raw_connect,
                                 subprocess_env, table_snapshot)


def _backups() -> set[Path]:
    from cm_desktop.paths import backups_dir

    return set(backups_dir().glob("*.sqlite3"))


def _ids(path: Path) -> set[str]:
    con = raw_connect(path)
    try:
        return {r[0] for r in con.execute("SELECT id FROM ratings")}
    finally:
        con.close()


def _replacement_file(tmp_path: Path, n: int) -> Path:
    from bank_store import DiscrepancyBank
    from bank_store.formats import export_native

    other = DiscrepancyBank(tmp_path / "other.sqlite3")
    other.create_profile("P", RESPONSES)
    other.add_ratings("P", [{"instance": f"replacement {i}", "model_response": RESPONSES[i % 10],
                             "user_response": RESPONSES[(i * 3) % 10]} for i in range(n)])
    path = tmp_path / "replacement.json"
    export_native(other, "P", path)
    other.close()
    return path


def test_replace_beside_a_streaming_writer_loses_no_stored_rating(tmp_path):
    """`cm bank add --jsonl -` streams ratings (each id printed once stored) while `cm bank
    import --replace` runs three times: every printed id is in the bank or in a backup the
    replaces took. (Before, the backup was taken before the write lock, and ratings committed
    in between were deleted unseen.)"""
    from bank_store import DiscrepancyBank

    bank_file = tmp_path / "bank.sqlite3"
    bank = DiscrepancyBank(bank_file)
    bank.create_profile("P", RESPONSES)
    bank.add_rating("P", "first", RESPONSES[0], RESPONSES[1])
    bank.close()
    replacement = _replacement_file(tmp_path, 3000)
    env = subprocess_env()
    before = _backups()
    writer = subprocess.Popen(cm_command("--bank", str(bank_file), "bank", "add", "--profile",
                                         "P", "--jsonl", "-"),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    printed: list[str] = []
    enough = threading.Event()
    stop = threading.Event()

    def feed():
        i = 0
        try:
            while not stop.is_set():
                writer.stdin.write(json.dumps({"instance": f"streamed {i}",
                                               "model_response": RESPONSES[i % 10],
                                               "user_response": RESPONSES[(i + 1) % 10]}) + "\n")
                writer.stdin.flush()
                i += 1
        except BrokenPipeError:
            pass
        finally:
            writer.stdin.close()

    def read():
        for line in writer.stdout:
            printed.append(line.strip())
            if len(printed) >= 20:
                enough.set()

    threads = [threading.Thread(target=feed), threading.Thread(target=read)]
    for t in threads:
        t.start()
    try:
        assert enough.wait(120), "the streaming writer stored nothing"
        for _ in range(3):
            done = subprocess.run(cm_command("--bank", str(bank_file), "bank", "import",
                                             str(replacement), "--profile", "P", "--replace"),
                                  capture_output=True, text=True, env=env, timeout=300)
            assert done.returncode == 0, done.stderr
    finally:
        stop.set()
        threads[0].join(60)
        writer.wait(120)
        threads[1].join(60)
    assert writer.returncode == 0, writer.stderr.read()
    new_backups = _backups() - before
    assert len(new_backups) == 3, new_backups
    kept = _ids(bank_file).union(*(_ids(b) for b in new_backups))
    lost = [rid for rid in printed if rid not in kept]
    assert printed and not lost, f"{len(lost)} of {len(printed)} stored ratings were lost"


def test_profile_deletion_backs_up_inside_its_lock(tmp_path):
    from bank_store import DiscrepancyBank

    bank = DiscrepancyBank(tmp_path / "bank.sqlite3", backup_dir=tmp_path / "backups")
    bank.create_profile("P", RESPONSES)
    bank.add_rating("P", "q", RESPONSES[0], RESPONSES[1])
    before = table_snapshot(bank.path)
    backup = bank.delete_profile("P", backup=True)
    assert table_snapshot(backup) == before
    assert bank.list_profiles() == []
    bank.close()


def _newer_schema_backup(tmp_path: Path, bank) -> Path:
    backup = bank.backup(tmp_path / "from-the-future.sqlite3")
    con = sqlite3.connect(backup)
    con.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
                " VALUES ('cm_desktop_bank', '9999_from_a_newer_version', '2030-01-01')")
    con.commit()
    con.close()
    return backup


@pytest.mark.parametrize("kind", ["newer schema", "not a bank", "truncated"])
def test_a_failed_restore_leaves_the_bank_exactly_as_it_was(tmp_path, kind):
    from bank_store import DiscrepancyBank

    bank_file = tmp_path / "bank.sqlite3"
    bank = DiscrepancyBank(bank_file)
    bank.create_profile("P", RESPONSES)
    bank.add_ratings("P", [{"instance": f"q{i}", "model_response": RESPONSES[i % 10],
                            "user_response": RESPONSES[0]} for i in range(50)])
    if kind == "newer schema":
        source = _newer_schema_backup(tmp_path, bank)
    elif kind == "not a bank":
        source = tmp_path / "other.sqlite3"
        con = sqlite3.connect(source)
        con.execute("CREATE TABLE t (x)")
        con.commit()
        con.close()
    else:
        source = bank.backup(tmp_path / "full.sqlite3")
        source.write_bytes(source.read_bytes()[:5000])
    bank.close()
    before = table_snapshot(bank_file)
    env = subprocess_env()
    done = subprocess.run(cm_command("--bank", str(bank_file), "bank", "restore", str(source)),
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert table_snapshot(bank_file) == before
    assert integrity_check(bank_file) == ["ok"]
    later = subprocess.run(cm_command("--bank", str(bank_file), "bank", "show", "--profile", "P"),
                           capture_output=True, text=True, env=env, timeout=120)
    assert later.returncode == 0, later.stderr


def test_a_successful_restore_names_the_backup_of_what_it_replaced(tmp_path):
    from bank_store import DiscrepancyBank

    bank = DiscrepancyBank(tmp_path / "bank.sqlite3", backup_dir=tmp_path / "backups")
    bank.create_profile("P", RESPONSES)
    bank.add_rating("P", "kept", RESPONSES[0], RESPONSES[1])
    bank.create_conversation("P", "a chat")
    source = bank.backup(tmp_path / "then.sqlite3")
    then = table_snapshot(bank.path)
    bank.add_rating("P", "later", RESPONSES[2], RESPONSES[3])
    now = table_snapshot(bank.path)
    safety = bank.restore_backup(source)
    assert table_snapshot(bank.path) == then
    assert table_snapshot(safety) == now
    assert [c.title for c in bank.conversations("P")] == ["a chat"]
    assert integrity_check(bank.path) == ["ok"]
    bank.close()


_SLOW_BACKUP = """
import sys
from bank_store import DiscrepancyBank
bank = DiscrepancyBank(sys.argv[1], backup_dir=sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
bank.backup()
"""


def test_a_backup_killed_part_way_is_never_listed(tmp_path):
    """SIGKILL as soon as anything appears in the backups folder: no file under a backup's
    name may be incomplete (before: a full-size file with a -journal, unrestorable)."""
    from bank_store import DiscrepancyBank
    from bank_store.backups import list_backups

    bank_file = tmp_path / "bank.sqlite3"
    folder = tmp_path / "backups"
    bank = DiscrepancyBank(bank_file)
    bank.create_profile("P", RESPONSES)
    bank.add_ratings("P", [{"instance": f"a longer customer message, number {i}",
                            "model_response": RESPONSES[i % 10],
                            "user_response": RESPONSES[(i * 7) % 10]} for i in range(60_000)])
    bank.close()
    folder.mkdir()
    child = subprocess.Popen([sys.executable, "-c", _SLOW_BACKUP, str(bank_file), str(folder)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=subprocess_env())
    assert child.stdout.readline().strip() == "ready"
    child.stdin.write("go\n")
    child.stdin.flush()
    while not any(folder.iterdir()) and child.poll() is None:
        pass  # spin: the kill must land while the backup is being written
    os.kill(child.pid, signal.SIGKILL)
    child.wait(60)
    visible = [p for p in folder.iterdir() if not p.name.startswith(".")]
    assert visible == list_backups(folder)
    for backup in visible:
        assert not Path(str(backup) + "-journal").exists(), backup
        assert integrity_check(backup) == ["ok"], backup
        assert _ids(backup) == _ids(bank_file)
