"""Crash safety: a process adding ratings is SIGKILLed at 20 random moments; each time
the bank opens, passes `PRAGMA integrity_check`, and holds every rating whose call returned
before the kill. Also: a kill while a new bank file is being created leaves a usable bank.
"""

from __future__ import annotations

import random
from collections import Counter
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reliability_helpers import (
    RESPONSES,
    cm_command,
    counts_match_ratings,
    counts_table_matches_group_by,
    integrity_check,
    script_command,
    subprocess_env,
)

KILLS = 20
BATCH = 20  # crash_writer.BATCH
WAL_SPILL_BYTES = 256 * 1024
SEED = 20250601


class _Writer:
    """The crash_writer child plus a thread collecting the ids it printed (complete lines only:
    a line cut by the kill is a rating the child never reported)."""

    def __init__(self, bank_path, profile, tag):
        self.proc = subprocess.Popen(
            script_command("crash_writer.py", str(bank_path), profile, tag),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env())
        self.ready = threading.Event()
        self.ids: list[str] = []
        self.batches = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        buffered = b""
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                text = line.decode()
                if text == "ready":
                    self.ready.set()
                elif text.startswith("batch "):
                    self.ids.extend(text[len("batch "):].split(","))
                    self.batches += 1
                elif text:
                    self.ids.append(text)
        self.ready.set()  # EOF: never leave the parent waiting on a child that died

    def kill(self) -> tuple[int, bytes]:
        self.proc.send_signal(signal.SIGKILL)
        code = self.proc.wait(timeout=30)
        self._reader.join(timeout=30)
        return code, self.proc.stderr.read()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_at_20_random_moments_loses_no_returned_rating(tmp_path):
    from bank_store import DiscrepancyBank

    bank_path = tmp_path / "bank.sqlite3"
    setup = DiscrepancyBank(bank_path)
    setup.create_profile("P", RESPONSES)
    setup.close()

    rng = random.Random(SEED)
    reported: set[str] = set()
    killed_mid_stream = 0
    batches = 0
    for round_no in range(KILLS):
        writer = _Writer(bank_path, "P", f"round{round_no}")
        assert writer.ready.wait(timeout=60), "the writer never opened the bank"
        assert writer.proc.poll() is None, writer.proc.stderr.read().decode()
        delay = rng.uniform(0.020, 0.400)
        time.sleep(delay)
        code, stderr = writer.kill()
        assert code == -signal.SIGKILL, f"round {round_no}: writer ended by itself: {stderr!r}"
        reported.update(writer.ids)
        batches += writer.batches
        killed_mid_stream += bool(writer.ids)

        assert integrity_check(bank_path) == ["ok"], f"round {round_no}"
        bank = DiscrepancyBank(bank_path)
        try:
            stored = {r.id for r in bank.ratings("P")}
            missing = reported - stored
            assert not missing, (f"round {round_no} (kill after {delay * 1000:.0f} ms): "
                                 f"{len(missing)} ratings whose add_rating returned are gone")
            # At most one call per round was in flight at the kill; it may or may not have
            # committed. Anything more would be a rating nobody added.
            unreported = stored - reported
            assert len(unreported) <= (round_no + 1) * BATCH
            # A batch is one transaction: stored whole or not at all, never in part.
            batch_sizes = Counter(r.instance.rsplit(" item ", 1)[0]
                                  for r in bank.ratings("P") if " batch " in r.instance)
            torn = {k: n for k, n in batch_sizes.items() if n != BATCH}
            assert not torn, f"round {round_no}: batches stored in part: {torn}"
            kept, recomputed = counts_match_ratings(bank, "P")
            assert kept == recomputed, f"round {round_no}: counts differ from the ratings"
            assert bank.rating_count("P") == len(stored)
        finally:
            bank.close()
        kept_rows, grouped_rows = counts_table_matches_group_by(bank_path)
        assert kept_rows == grouped_rows, f"round {round_no}: counts table != GROUP BY ratings"

    # The kills must have landed while ratings were being written, not before the first one.
    assert killed_mid_stream >= KILLS // 2, f"only {killed_mid_stream} kills hit a writing process"
    assert len(reported) >= KILLS
    assert batches >= KILLS, "too few batches to show batch atomicity"
    print(f"{KILLS} kills, {killed_mid_stream} mid-stream, {len(reported)} ratings reported "
          f"({batches} batches) and all present")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigkill_while_a_new_bank_is_created_leaves_a_usable_bank(tmp_path):
    """The first open creates the file and runs the migrations; a kill anywhere in there must
    not leave a file that later refuses to open."""
    from bank_store import DiscrepancyBank

    rng = random.Random(SEED + 1)
    code = "import sys; from bank_store import DiscrepancyBank; DiscrepancyBank(sys.argv[1])"
    for attempt in range(6):
        path = tmp_path / f"fresh{attempt}.sqlite3"
        proc = subprocess.Popen([sys.executable, "-c", code, str(path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=subprocess_env())
        time.sleep(rng.uniform(0.05, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if path.exists():
            assert integrity_check(path) == ["ok"]
        bank = DiscrepancyBank(path)
        try:
            bank.create_profile("P", RESPONSES)
            rating = bank.add_rating("P", "after the crash", RESPONSES[0], RESPONSES[1])
            assert [r.id for r in bank.ratings("P")] == [rating.id]
        finally:
            bank.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_during_a_replace_import_leaves_the_old_bank_or_the_new_one(tmp_path):
    """`cm bank import --replace` of 20,000 ratings killed part way: the profile holds either
    all its old ratings or all the file's, never a mix, and the bank passes integrity_check."""
    import shutil

    from bank_store import DiscrepancyBank
    from bank_store.formats import export_native

    source = DiscrepancyBank(tmp_path / "source.sqlite3")
    source.create_profile("P", RESPONSES)
    source.add_ratings("P", [{"instance": f"imported {i}", "model_response": RESPONSES[i % 10],
                              "user_response": RESPONSES[(i // 10) % 10]} for i in range(20_000)])
    new_ids = {r.id for r in source.ratings("P")}
    big = tmp_path / "big.json.gz"
    export_native(source, "P", big)
    source.close()

    original = tmp_path / "original.sqlite3"
    bank = DiscrepancyBank(original)
    bank.create_profile("P", RESPONSES)
    bank.add_ratings("P", [{"instance": f"mine {i}", "model_response": RESPONSES[i % 10],
                            "user_response": RESPONSES[i % 10]} for i in range(50)])
    old_ids = {r.id for r in bank.ratings("P")}
    bank.close()

    def run_import(target, kill_after=None, kill_in_transaction=False):
        proc = subprocess.Popen(cm_command("--bank", str(target), "bank", "import", str(big),
                                           "--profile", "P", "--replace"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=subprocess_env())
        if kill_after is None:
            return proc.communicate(timeout=240)[1], proc.returncode
        if kill_in_transaction:
            # The import's one transaction spills pages into the WAL long before it commits:
            # a growing WAL says the kill lands inside the write (or at its commit).
            wal = Path(str(target) + "-wal")
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                if wal.exists() and wal.stat().st_size > WAL_SPILL_BYTES:
                    break
                time.sleep(0.001)
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        return b"", proc.returncode

    def state(target):
        assert integrity_check(target) == ["ok"]
        b = DiscrepancyBank(target)
        try:
            ids = {r.id for r in b.ratings("P")}
            kept, recomputed = counts_match_ratings(b, "P")
            assert kept == recomputed
        finally:
            b.close()
        assert ids in (old_ids, new_ids), f"a mix: {len(ids & old_ids)} old, {len(ids & new_ids)} new"
        return "old" if ids == old_ids else "new"

    # One uninterrupted run: it works, and its length sets the window the kills fall in.
    target = tmp_path / "full.sqlite3"
    shutil.copyfile(original, target)
    started = time.monotonic()
    stderr, code = run_import(target)
    full_run = time.monotonic() - started
    assert code == 0, stderr.decode()
    assert state(target) == "new"

    rng = random.Random(SEED + 2)
    outcomes = []
    for attempt in range(6):
        target = tmp_path / f"killed{attempt}.sqlite3"
        shutil.copyfile(original, target)
        in_txn = attempt % 2 == 0
        delay = rng.uniform(0, 0.05) if in_txn else rng.uniform(0.2, 1.0) * full_run
        code = run_import(target, kill_after=delay, kill_in_transaction=in_txn)[1]
        where = "in-transaction" if in_txn else "timed"
        outcomes.append((where, state(target) if code == -signal.SIGKILL else "finished"))
    print(f"replace import of 20,000 ratings ({full_run:.1f} s) killed 6 times: {outcomes}")
    killed_in_txn = [o for w, o in outcomes if w == "in-transaction" and o != "finished"]
    assert len(killed_in_txn) >= 2, outcomes
