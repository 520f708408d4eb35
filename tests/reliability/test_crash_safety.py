"""Crash safety (issue 6): a process adding ratings is SIGKILLed at 20 random moments; each time
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

import pytest

from reliability_helpers import (
    RESPONSES,
    counts_match_ratings,
    counts_table_matches_group_by,
    integrity_check,
    script_command,
    subprocess_env,
)

KILLS = 20
BATCH = 20  # crash_writer.BATCH
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
