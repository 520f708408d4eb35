"""`cm models ...`, library names for --model, `cm bank rebase` and the ratings-by-model lines of
`cm bank show`, as real subprocesses on the embedded Gemma."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from test_bank_cli import assert_one_line_error, cm

from bank_store import DiscrepancyBank
from cm_desktop.settings import Settings

R = ["card arrival", "lost or stolen card", "pending transfer", "request refund"]
OTHER = "llama_cpp:another-model.gguf:123:0123456789ab"
RATED = [("where is my new card", R[1], R[0]), ("my card has not come yet", R[1], R[0]),
         ("someone stole my card", R[0], R[1]), ("I want my money back", R[2], R[3]),
         ("I want my money back", R[2], R[3])]


def test_models_list_shows_the_embedded_model_and_json_has_the_fields(gemma_path):
    res = cm("models", "list")
    assert res.returncode == 0, res.stderr
    assert gemma_path.stem in res.stdout and "embedded" in res.stdout
    res = cm("models", "list", "--json")
    rows = json.loads(res.stdout)
    assert rows[0]["source"] == "embedded" and len(rows[0]["sha256"]) == 64
    assert rows[0]["architecture"] == "gemma3" and isinstance(rows[0]["chat_template"], bool)


def test_models_use_and_rm_and_add_errors(tmp_path, gemma_path):
    res = cm("models", "use", "embedded")
    assert res.returncode == 0, res.stderr
    assert Settings.load().model_path == ""
    res = cm("models", "rm", "embedded", "--yes")
    assert_one_line_error(res.returncode, res.stderr, "cannot be removed")
    res = cm("models", "add", str(tmp_path / "missing.gguf"))
    assert_one_line_error(res.returncode, res.stderr, "no such file")
    res = cm("models", "use", "no-such-model")
    assert_one_line_error(res.returncode, res.stderr, "no model named 'no-such-model'")


def test_model_option_takes_a_library_name(tmp_path, gemma_path):
    from cm_desktop.cli.models_cmds import resolve_model_option

    assert resolve_model_option(gemma_path.stem) == str(gemma_path)
    assert resolve_model_option(str(gemma_path)) == str(gemma_path)
    bank_path = tmp_path / "bank.sqlite3"
    with DiscrepancyBank(bank_path) as bank:
        bank.create_profile("p", R)
    res = cm("--bank", str(bank_path), "chat", "--profile", "p", "--model", "not-a-model",
             stdin="")
    assert_one_line_error(res.returncode, res.stderr, "neither a file nor a model in the library")


@pytest.mark.slow
def test_bank_rebase_changes_every_y_prime_fingerprint_and_keeps_every_x_y(tmp_path):
    bank_path = tmp_path / "bank.sqlite3"
    with DiscrepancyBank(bank_path) as bank:
        bank.create_profile("p", R)
        for x, y_model, y in RATED:
            bank.add_rating("p", x, y_model, y, fingerprint=OTHER)
    res = cm("--bank", str(bank_path), "bank", "show", "--profile", "p")
    assert res.returncode == 0, res.stderr
    assert "0 with the current model" in res.stdout and f"{len(RATED)} with other models" in res.stdout
    assert "cm bank rebase --profile p" in res.stdout

    res = cm("--bank", str(bank_path), "bank", "rebase", "--profile", "p",
             env={"CM_EMBEDDER": "hashed"})
    assert res.returncode == 0, res.stderr
    with DiscrepancyBank(bank_path) as bank:
        ratings = bank.ratings("p")
        with_p, stored = bank.model_distributions("p")
    old = [r for r in ratings if r.fingerprint == OTHER]
    new = [r for r in ratings if r.fingerprint != OTHER]
    assert len(old) == len(RATED)                                   # kept
    assert len(new) == len(RATED)
    # the model's distribution is stored with each new rating, its argmax the new y'
    assert set(with_p) == {r.id for r in new}
    y_prime = {r.id: r.model_response for r in new}
    assert all(R[int(row.argmax())] == y_prime[rid] for rid, row in zip(with_p, stored))
    current = {r.fingerprint for r in new}
    assert len(current) == 1 and current.pop().startswith("llama_cpp:")
    assert all(r.model_response in R for r in new)
    xy = Counter((r.instance, r.user_response) for r in old)
    assert Counter((r.instance, r.user_response) for r in new) == xy

    res = cm("--bank", str(bank_path), "bank", "show", "--profile", "p")
    assert f"{len(RATED)} with the current model" in res.stdout
    assert f"{len(RATED)} of them are rebased" in res.stdout
    res = cm("--bank", str(bank_path), "bank", "rebase", "--profile", "p",
             env={"CM_EMBEDDER": "hashed"})
    assert res.returncode == 0 and "nothing to rebase" in res.stdout


@pytest.mark.slow
def test_bank_rebase_stops_on_ctrl_c_keeps_what_it_wrote_and_resumes(tmp_path):
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    from test_bank_cli import REPO

    bank_path = tmp_path / "bank.sqlite3"
    rated = [(f"{x} ({i})", y) for i in range(15)
             for x, y in (("where is my new card", R[0]), ("I want my money back", R[3]))]
    with DiscrepancyBank(bank_path) as bank:
        bank.create_profile("p", R)
        for x, y in rated:
            bank.add_rating("p", x, R[1], y, fingerprint=OTHER)

    def rebased() -> int:
        with sqlite3.connect(f"file:{bank_path}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT COUNT(*) FROM ratings WHERE fingerprint != ?",
                                (OTHER,)).fetchone()[0]

    argv = [sys.executable, "-m", "cm_desktop.cli.main", "--bank", str(bank_path), "bank",
            "rebase", "--profile", "p"]
    env = dict(os.environ, PYTHONPATH=str(REPO), CM_EMBEDDER="hashed")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        # the answers are written 8 queries at a time: wait for the first batch (a state, with a
        # limit sized for loading the model on a busy 2-core machine), then Ctrl+C
        deadline = time.monotonic() + 900
        while rebased() < 8 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    first = rebased()
    assert 8 <= first < len(rated)
    assert f"stopped: {len(rated) - first} ratings still to do" in out
    assert "Traceback" not in err

    res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr
    assert f"asked {len(rated) - first} queries" in res.stdout        # only what was left
    with DiscrepancyBank(bank_path) as bank:
        new = [r for r in bank.ratings("p") if r.fingerprint != OTHER]
    assert Counter((r.instance, r.user_response) for r in new) == Counter(rated)


def test_bank_show_lines_count_each_model_rebased_and_paper_ratings(tmp_path):
    from bank_store.rebase import rebase
    from cm_desktop.cli.rebase_cmds import model_lines

    current = "llama_cpp:current-model.gguf:456:abcdefabcdef"
    with DiscrepancyBank(tmp_path / "bank.sqlite3") as bank:
        bank.create_profile("p", R)
        for x, y_model, y in RATED:
            bank.add_rating("p", x, y_model, y, fingerprint=OTHER)
        bank.add_ratings("p", [{"instance": "", "model_response": R[0], "user_response": R[1],
                                "source": "imported"}])
        text = "\n".join(model_lines(bank, "p", current))
        assert text.startswith(f"ratings by model: 0 with the current model ({current}), "
                               f"{len(RATED) + 1} with other models")
        assert f"{len(RATED)} of them can be asked again" in text and "rebased:" not in text
        assert "1 have no query (a paper file): they cannot be rebased" in text
        asked = []
        rebase(bank, "p", current, lambda x: asked.append(x) or R[0],
               should_stop=lambda: len(asked) >= 1, batch=1)
        text = "\n".join(model_lines(bank, "p", current))
    done = sum(1 for x, _, _ in RATED if x == asked[0])
    assert text.startswith(f"ratings by model: {done} with the current model")
    assert f"{done} of them are rebased" in text
    assert f"{len(RATED) - done} of them can be asked again" in text
    assert "not known here" in model_lines(None, "p", None)[0]
