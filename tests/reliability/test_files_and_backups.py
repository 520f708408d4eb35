"""Files: the bank, its -wal/-shm and every backup are created owner-only (0600, their
dirs 0700) whatever the umask; a backup is taken before any `--replace` import (API and CLI),
and restoring it (`cm bank restore`) brings back exactly the ratings and counts.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from reliability_helpers import (
    RESPONSES,
    cm_command,
    file_mode,
    integrity_check,
    subprocess_env,
    table_snapshot,
)


@contextmanager
def umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _fill(bank, profile: str, tag: str, n: int) -> None:
    bank.add_ratings(profile, [
        {"instance": f"{tag} {i}", "model_response": RESPONSES[i % 10],
         "user_response": RESPONSES[(i * 7) % 10]} for i in range(n)])


def _other_bank_file(tmp_path: Path) -> Path:
    """A native export of profile P holding different ratings: what --replace will load."""
    from bank_store import DiscrepancyBank
    from bank_store.formats import export_native

    other = DiscrepancyBank(tmp_path / "other.sqlite3")
    other.create_profile("P", RESPONSES)
    _fill(other, "P", "replacement", 9)
    path = tmp_path / "replacement.json"
    export_native(other, "P", path)
    other.close()
    return path


def _ratings_and_counts(bank_path: Path):
    from bank_store import DiscrepancyBank

    bank = DiscrepancyBank(bank_path)
    try:
        return sorted(r.id for r in bank.ratings("P")), bank.counts("P")
    finally:
        bank.close()


def _backups() -> set[Path]:
    from cm_desktop.paths import backups_dir

    return set(backups_dir().glob("*"))


@pytest.mark.parametrize("mask", [0o000, 0o022])
def test_bank_wal_shm_and_backup_are_owner_only_whatever_the_umask(tmp_path, mask):
    from bank_store import DiscrepancyBank
    from cm_desktop.paths import backups_dir, bank_path, data_dir

    with umask(mask):
        assert file_mode(data_dir()) == 0o700
        assert file_mode(backups_dir()) == 0o700
        paths = [bank_path(), tmp_path / "new-dir" / "bank.sqlite3"]
        for path in paths:
            bank = DiscrepancyBank(path, backup_dir=backups_dir())
            bank.create_profile("P", RESPONSES)
            _fill(bank, "P", "q", 5)
            # The connection is still open: the WAL and its index exist now.
            for side in ("", "-wal", "-shm"):
                side_path = Path(str(path) + side)
                assert side_path.exists(), side_path
                assert file_mode(side_path) == 0o600, f"{side_path}: {oct(file_mode(side_path))}"
            assert file_mode(path.parent) == 0o700, path.parent
            backup = bank.backup()
            named = bank.backup(tmp_path / f"named-{mask}-{path.parent.name}" / "copy.sqlite3")
            bank.close()
            for b in (backup, named):
                assert file_mode(b) == 0o600, f"{b}: {oct(file_mode(b))}"
                assert file_mode(b.parent) == 0o700
                assert not Path(str(b) + "-wal").exists(), "a backup is one self-contained file"
                assert integrity_check(b) == ["ok"]
        assert backup.parent == backups_dir()


def test_cli_creates_the_bank_and_backups_owner_only_under_umask_0(tmp_path):
    path = tmp_path / "cli" / "bank.sqlite3"
    responses = tmp_path / "responses.txt"
    responses.write_text("\n".join(RESPONSES) + "\n", encoding="utf-8")
    env = subprocess_env()
    before = _backups()
    for argv in (["--bank", str(path), "profile", "create", "P", "--responses", str(responses)],
                 ["--bank", str(path), "bank", "backup"]):
        done = subprocess.run(cm_command(*argv), capture_output=True, text=True, env=env,
                              timeout=120, preexec_fn=lambda: os.umask(0))
        assert done.returncode == 0, done.stderr
    assert file_mode(path) == 0o600
    assert file_mode(path.parent) == 0o700
    new = _backups() - before
    assert len(new) == 1, new
    assert all(file_mode(b) == 0o600 for b in new)


def test_api_replace_import_takes_a_backup_first_and_restore_brings_it_back(tmp_path):
    from bank_store import DiscrepancyBank
    from bank_store.formats import import_file

    from cm_desktop.paths import backups_dir

    replacement = _other_bank_file(tmp_path)
    path = tmp_path / "bank.sqlite3"
    bank = DiscrepancyBank(path, backup_dir=backups_dir())
    bank.create_profile("P", RESPONSES)
    _fill(bank, "P", "original", 30)
    bank.undo_last("P", 2)  # history with gaps, not just one insert
    before = table_snapshot(path)
    ids_before, counts_before = _ratings_and_counts(path)
    backups_before = _backups()

    import_file(bank, replacement, "P", mode="replace")
    ids_after, _ = _ratings_and_counts(path)
    assert ids_after != ids_before and len(ids_after) == 9, "the replace did not replace"

    new = _backups() - backups_before
    assert len(new) == 1, f"wanted one backup before the replace, got {sorted(new)}"
    backup = new.pop()
    assert file_mode(backup) == 0o600
    assert table_snapshot(backup) == before, "the backup is not the bank as it was"

    bank.restore_backup(backup)
    bank.close()
    assert table_snapshot(path) == before
    assert _ratings_and_counts(path) == (ids_before, counts_before)
    assert integrity_check(path) == ["ok"]
    assert file_mode(path) == 0o600


def test_cli_replace_import_takes_a_backup_and_cm_bank_restore_brings_it_back(tmp_path):
    from bank_store import DiscrepancyBank

    replacement = _other_bank_file(tmp_path)
    path = tmp_path / "bank.sqlite3"
    bank = DiscrepancyBank(path)
    bank.create_profile("P", RESPONSES, description="mine")
    _fill(bank, "P", "original", 40)
    bank.close()
    before = table_snapshot(path)
    ids_before, counts_before = _ratings_and_counts(path)
    backups_before = _backups()
    env = subprocess_env()

    done = subprocess.run(cm_command("--bank", str(path), "bank", "import", str(replacement),
                                     "--profile", "P", "--replace"),
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _ratings_and_counts(path)[0] != ids_before
    new = _backups() - backups_before
    assert len(new) == 1, f"wanted one backup before the replace, got {sorted(new)}"
    backup = new.pop()
    assert file_mode(backup) == 0o600
    assert table_snapshot(backup) == before

    replaced = table_snapshot(path)
    backups_before = _backups()
    done = subprocess.run(cm_command("--bank", str(path), "bank", "restore", str(backup)),
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert table_snapshot(path) == before
    # The restore itself is undoable: the bank it overwrote was saved first, owner-only.
    safety = _backups() - backups_before
    assert len(safety) == 1 and file_mode(next(iter(safety))) == 0o600
    assert table_snapshot(next(iter(safety))) == replaced
    assert _ratings_and_counts(path) == (ids_before, counts_before)
    assert integrity_check(path) == ["ok"]
    assert file_mode(path) == 0o600


def test_a_failed_replace_import_changes_nothing(tmp_path):
    """A damaged file given to --replace: the bank keeps every rating (the backup is a bonus,
    not what keeps the ratings)."""
    path = tmp_path / "bank.sqlite3"
    from bank_store import DiscrepancyBank

    bank = DiscrepancyBank(path)
    bank.create_profile("P", RESPONSES)
    _fill(bank, "P", "original", 12)
    bank.close()
    before = table_snapshot(path)
    broken = _other_bank_file(tmp_path)
    broken.write_bytes(broken.read_bytes()[:-40])
    done = subprocess.run(cm_command("--bank", str(path), "bank", "import", str(broken),
                                     "--profile", "P", "--replace"),
                          capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert table_snapshot(path) == before
