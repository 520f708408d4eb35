"""Two writers: the GUI process and a `cm` command write the same bank at once, 2,000
ratings each. No "database is locked" reaches either, no rating is lost, counts stay exact.
"""

from __future__ import annotations

import json
import subprocess

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

N_EACH = 2000


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_gui_process_and_cm_bank_add_write_at_once(tmp_path):
    from bank_store import DiscrepancyBank

    bank_path = tmp_path / "bank.sqlite3"
    setup = DiscrepancyBank(bank_path)
    setup.create_profile("P", RESPONSES)
    setup.close()

    jsonl = tmp_path / "cli_ratings.jsonl"
    with jsonl.open("w", encoding="utf-8") as f:
        for i in range(N_EACH):
            f.write(json.dumps({"instance": f"cli query {i}",
                                "model_response": RESPONSES[(i * 5) % len(RESPONSES)],
                                "user_response": RESPONSES[i % len(RESPONSES)]}) + "\n")

    env = subprocess_env()
    gui = subprocess.Popen(script_command("gui_writer.py", str(bank_path), "P", str(N_EACH), "cli "),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    cli = subprocess.Popen(cm_command("--bank", str(bank_path), "bank", "add", "--profile", "P",
                                      "--jsonl", str(jsonl)),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        cli_out, cli_err = cli.communicate(timeout=500)
        gui_out, gui_err = gui.communicate(timeout=500)
    finally:
        for proc in (gui, cli):
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    cli_text = (cli_out + cli_err).decode(errors="replace")
    gui_text = gui_err.decode(errors="replace")
    assert cli.returncode == 0, f"cm bank add failed: {cli_text[-2000:]}"
    assert gui.returncode == 0, f"the GUI-style writer failed: {gui_text[-2000:]}"
    for text in (cli_text, gui_text):
        assert "locked" not in text.lower() and "busy" not in text.lower(), text[-2000:]
        assert "Traceback" not in text, text[-2000:]

    report = json.loads(gui_out.decode().strip().splitlines()[-1])
    assert report["errors"] == []
    assert len(report["ids"]) == N_EACH
    # The writes really overlapped: the GUI process issued its first write while the command was
    # part way through its ratings (so it had to wait for the lock), or while the GUI process
    # was part way through its ratings it saw some, but not all, of the command's.
    overlapped = [(own, other) for own, other in report["samples"]
                  if 0 < own < N_EACH and 0 < other < N_EACH]
    contended = 0 < report["other_seen_at_first_write"] < N_EACH
    assert contended or overlapped, \
        f"the two writers never overlapped: {report['other_seen_at_first_write']}, {report['samples'][:20]}"
    print(f"first GUI write issued with {report['other_seen_at_first_write']} of the command's "
          f"ratings in; {len(overlapped)} of {len(report['samples'])} samples taken mid-write saw "
          "the other writer part way")

    assert integrity_check(bank_path) == ["ok"]
    bank = DiscrepancyBank(bank_path)
    try:
        ratings = bank.ratings("P")
        instances = [r.instance for r in ratings]
        assert len(ratings) == 2 * N_EACH
        assert sorted(instances) == sorted([f"cli query {i}" for i in range(N_EACH)]
                                           + [f"gui query {i}" for i in range(N_EACH)])
        assert set(report["ids"]) <= {r.id for r in ratings}
        kept, recomputed = counts_match_ratings(bank, "P")
        assert kept == recomputed
        assert sum(kept.values()) == 2 * N_EACH
    finally:
        bank.close()
    kept_rows, grouped_rows = counts_table_matches_group_by(bank_path)
    assert kept_rows == grouped_rows
