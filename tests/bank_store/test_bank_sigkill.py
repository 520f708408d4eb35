"""A writer process killed with SIGKILL in the middle of a stream of ratings. The bank
opens, PRAGMA integrity_check is ok, and every rating whose call returned before the kill is
there. (tests/reliability repeats this 20 times; this is the one-kill version.)"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from bank_store import DiscrepancyBank
from bank_helpers import REPO, SMALL_R, counts_equal_group_by

WRITER = """
import sys
from bank_store import DiscrepancyBank
bank = DiscrepancyBank(sys.argv[1])
responses = bank.get_profile("P").responses
print("ready", flush=True)
i = 0
while True:
    r = bank.add_rating("P", f"query {i}", responses[i % 6], responses[(i * 5) % 6])
    print(r.id, flush=True)   # only after add_rating returned: this rating is promised
    i += 1
"""


def test_sigkill_mid_stream_loses_no_returned_rating(tmp_path):
    path = tmp_path / "bank.sqlite3"
    setup = DiscrepancyBank(path)
    setup.create_profile("P", SMALL_R)
    setup.close()
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    printed: list[str] = []
    try:
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read()
        deadline = time.monotonic() + 60
        while len(printed) < 200 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line.endswith(b"\n"):
                break
            printed.append(line.decode().strip())
        assert len(printed) >= 200, "the writer did not get going"
        proc.send_signal(signal.SIGKILL)  # while it is still writing
        proc.wait(timeout=30)
        # lines written before the kill but not yet read are promises too
        for line in proc.stdout.read().splitlines(keepends=True):
            if line.endswith(b"\n"):
                printed.append(line.decode().strip())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    bank = DiscrepancyBank(path)
    try:
        stored = {r.id for r in bank.ratings("P")}
        missing = [i for i in printed if i not in stored]
        assert missing == [], f"{len(missing)} ratings reported saved are gone"
        assert len(stored) >= len(printed)
    finally:
        bank.close()
    assert counts_equal_group_by(path)
