"""`cm profile ...` and `cm bank ...`: in process through main(argv), and as a real subprocess.
Errors must be one line on stderr with a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bank_store import DiscrepancyBank, normalise_response
from cm_desktop.cli.main import main

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared"
BANKING_PAPER = SHARED / "memory_banks" / "Memory_Masking_banking77_0.05_0.7_1.json"
BANKING_DATA = SHARED / "datasets" / "banking77" / "large.jsonl"
R = ["card arrival", "lost or stolen card", "pending transfer", "request refund"]


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def cm(*argv: str, env: dict | None = None, stdin: str | None = None):
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([sys.executable, "-m", "cm_desktop.cli.main", *argv],
                          capture_output=True, text=True, env=full_env, input=stdin,
                          timeout=120)


def assert_one_line_error(code: int, err: str, expected: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cm: error: ") and expected in lines[0], lines[0]


@pytest.fixture
def responses_file(tmp_path) -> Path:
    path = tmp_path / "responses.txt"
    path.write_text("\n".join(R) + "\n\n", encoding="utf-8")
    return path


@pytest.fixture
def bank_file(tmp_path) -> Path:
    return tmp_path / "bank.sqlite3"


def _normalised(mapping: dict) -> dict:
    out: dict = {}
    for k, vs in mapping.items():
        out.setdefault(normalise_response(k), set()).update(normalise_response(v) for v in vs)
    return out


def test_profile_create_list_show_delete(capsys, bank_file, responses_file):
    b = ["--bank", str(bank_file)]
    code, out, _ = run_main(capsys, *b, "profile", "create", "P", "--responses",
                            str(responses_file), "--description", "mine")
    assert code == 0 and "4 responses" in out
    code, out, _ = run_main(capsys, *b, "profile", "list")
    assert code == 0 and "P" in out and "mine" in out
    code, out, _ = run_main(capsys, *b, "profile", "show", "P", "--all")
    assert code == 0 and all(r in out for r in R)
    # an encoder tuned on the profile is kept beside the bank (encoder_tuning): it goes with it,
    # and another profile's stays
    from cm_desktop.cm.encoder_tuning import tuned_file
    from cm_desktop.paths import tuned_encoders_dir

    kept = {name: tuned_file(tuned_encoders_dir(), bank_file, name) for name in ("P", "Other")}
    for path in kept.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"weights")
    code, out, _ = run_main(capsys, *b, "profile", "delete", "P")
    assert code == 0 and "backup" in out
    assert not kept["P"].exists() and kept["Other"].exists()
    backup = Path(out.split("backup: ")[1].strip(" )\n"))
    assert backup.exists() and backup.stat().st_mode & 0o777 == 0o600
    bank = DiscrepancyBank(bank_file)
    assert bank.list_profiles() == []
    bank.close()


@pytest.mark.skipif(not BANKING_PAPER.exists(), reason="../shared is not beside the repo")
def test_create_import_export_paper_gives_back_the_mapping(capsys, bank_file,
                                                                      tmp_path):
    b = ["--bank", str(bank_file)]
    assert run_main(capsys, *b, "profile", "create", "banking77", "--from-dataset",
                    str(BANKING_DATA))[0] == 0
    code, out, _ = run_main(capsys, *b, "bank", "import", str(BANKING_PAPER), "--profile",
                            "banking77")
    assert code == 0 and "imported 247 ratings" in out and "66 of 155" in out
    assert "note: this is a paper file" in out and "cannot be rebased" in out
    exported = tmp_path / "back.json"
    code, out, _ = run_main(capsys, *b, "bank", "export", str(exported), "--profile",
                            "banking77", "--format", "paper")
    assert code == 0
    original = json.loads(BANKING_PAPER.read_text(encoding="utf-8"))
    assert _normalised(json.loads(exported.read_text(encoding="utf-8"))) == _normalised(original)
    code, out, _ = run_main(capsys, *b, "bank", "show", "--profile", "banking77", "--top", "3")
    lines = out.strip().splitlines()
    assert code == 0 and lines[1].startswith("MODEL RESPONSE") and len(lines) > 1 + 2 + 3
    # after the table: whose model responses these are (a paper file: no queries to rebase)
    assert lines[1 + 2 + 3].startswith("ratings by model: 0 with the current model")
    assert "247 have no query (a paper file): they cannot be rebased" in out


def test_import_dry_run_merge_and_undo(capsys, bank_file, responses_file, tmp_path):
    b = ["--bank", str(bank_file)]
    run_main(capsys, *b, "profile", "create", "P", "--responses", str(responses_file))
    paper = tmp_path / "paper.json"
    paper.write_text(json.dumps({"Card Arrival": ["lost or stolen card", "card arrival"],
                                 "free text": ["request refund"]}), encoding="utf-8")
    code, out, _ = run_main(capsys, *b, "bank", "import", str(paper), "--profile", "P",
                            "--dry-run")
    assert code == 0 and "dry run" in out and "New ratings: 3" in out
    assert DiscrepancyBank(bank_file).rating_count("P") == 0
    assert run_main(capsys, *b, "bank", "import", str(paper), "--profile", "P")[0] == 0
    code, out, _ = run_main(capsys, *b, "bank", "import", str(paper), "--profile", "P")
    assert "imported 0 ratings" in out and "Duplicates skipped: 3" in out
    code, out, _ = run_main(capsys, *b, "bank", "undo", "--profile", "P", "-n", "2")
    assert code == 0 and "removed 2 ratings" in out
    assert DiscrepancyBank(bank_file).rating_count("P") == 1


def test_native_export_import_through_the_cli(capsys, bank_file, responses_file, tmp_path):
    b = ["--bank", str(bank_file)]
    run_main(capsys, *b, "profile", "create", "P", "--responses", str(responses_file))
    bank = DiscrepancyBank(bank_file)
    for i in range(5):
        bank.add_rating("P", f"q{i}", R[i % 4], R[(i + 1) % 4])
    out_file = tmp_path / "p.json.gz"
    assert run_main(capsys, *b, "bank", "export", str(out_file), "--profile", "P")[0] == 0
    code, out, _ = run_main(capsys, *b, "bank", "import", str(out_file), "--profile", "Q")
    assert code == 0 and "imported 5 ratings" in out
    assert bank.ratings("Q") == bank.ratings("P") and bank.counts("Q") == bank.counts("P")
    bank.close()


@pytest.mark.parametrize("argv, expected", [
    (["profile", "show", "nope"], "no profile named 'nope'"),
    (["bank", "show", "--profile", "nope"], "no profile named 'nope'"),
    (["bank", "import", "/definitely/missing.json", "--profile", "P"], "file not found"),
    (["profile", "create", "X", "--responses", "/definitely/missing.txt"], "file not found"),
    (["bank", "undo", "--profile", "P", "--id", "abc"], "has no rating 'abc'"),
    (["bank", "restore", "/definitely/missing.sqlite3"], "backup not found"),
])
def test_errors_are_one_line_in_process(capsys, bank_file, responses_file, argv, expected):
    run_main(capsys, "--bank", str(bank_file), "profile", "create", "P", "--responses",
             str(responses_file))
    code, _, err = run_main(capsys, "--bank", str(bank_file), *argv)
    assert_one_line_error(code, err, expected)


def test_malformed_and_mismatched_imports_are_one_line_and_change_nothing(
        capsys, bank_file, responses_file, tmp_path):
    b = ["--bank", str(bank_file)]
    run_main(capsys, *b, "profile", "create", "P", "--responses", str(responses_file))
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "cm-desktop-bank", "version": 1, "profile": {"name": "P"}, '
                   '"responses": ["a", "b"], "ratings": [{"instance": 3}]}', encoding="utf-8")
    code, _, err = run_main(capsys, *b, "bank", "import", str(bad), "--profile", "P")
    assert_one_line_error(code, err, "ratings[0]")
    other = DiscrepancyBank(tmp_path / "other.sqlite3")
    other.create_profile("P", ["something else", "another"])
    other.add_rating("P", "q", "something else", "something else")
    from bank_store.formats import export_native

    export_native(other, "P", tmp_path / "other.json")
    code, _, err = run_main(capsys, *b, "bank", "import", str(tmp_path / "other.json"),
                            "--profile", "P")
    assert_one_line_error(code, err, "--on-mismatch")
    assert DiscrepancyBank(bank_file).rating_count("P") == 0


def test_subprocess_help_for_every_command():
    for argv in ([], ["profile"], ["profile", "create"], ["profile", "list"],
                 ["profile", "show"], ["profile", "delete"], ["bank"], ["bank", "import"],
                 ["bank", "export"], ["bank", "show"], ["bank", "add"], ["bank", "undo"],
                 ["bank", "backup"], ["bank", "restore"]):
        done = cm(*argv, "--help")
        assert done.returncode == 0, (argv, done.stderr)
        assert "usage: cm" in done.stdout


def test_subprocess_errors_and_cm_bank_env(tmp_path, responses_file):
    bank_file = tmp_path / "env-bank.sqlite3"
    env = {"CM_BANK": str(bank_file)}
    done = cm("profile", "create", "P", "--responses", str(responses_file), env=env)
    assert done.returncode == 0, done.stderr
    assert bank_file.exists() and bank_file.stat().st_mode & 0o777 == 0o600
    done = cm("bank", "show", "--profile", "missing", env=env)
    assert_one_line_error(done.returncode, done.stderr, "no profile named 'missing'")
    not_a_bank = tmp_path / "junk.sqlite3"
    not_a_bank.write_bytes(b"junk" * 1000)
    done = cm("--bank", str(not_a_bank), "profile", "list")
    assert_one_line_error(done.returncode, done.stderr, "not a usable CM Desktop bank")
    done = cm("bank", "frobnicate")
    assert_one_line_error(done.returncode, done.stderr, "invalid choice: 'frobnicate'")
    assert done.returncode == 2
    done = cm("--bank", str(not_a_bank), "--debug", "profile", "list")
    assert done.returncode == 1 and "Traceback" in done.stderr  # --debug shows it


def test_subprocess_bank_add_prints_ids_and_checks_a_file_first(tmp_path, responses_file):
    bank_file = tmp_path / "bank.sqlite3"
    b = ["--bank", str(bank_file)]
    assert cm(*b, "profile", "create", "P", "--responses", str(responses_file)).returncode == 0
    lines = [json.dumps({"instance": f"q{i}", "model_response": R[i % 4],
                         "user_response": R[(i + 1) % 4]}) for i in range(5)]
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = cm(*b, "bank", "add", "--profile", "P", "--jsonl", str(good))
    assert done.returncode == 0, done.stderr
    ids = done.stdout.split()
    bank = DiscrepancyBank(bank_file)
    assert ids == [r.id for r in bank.ratings("P")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "\n" + '{"instance": "x", "model_response": ""}\n',
                   encoding="utf-8")
    done = cm(*b, "bank", "add", "--profile", "P", "--jsonl", str(bad))
    assert_one_line_error(done.returncode, done.stderr, "line 2")
    assert bank.rating_count("P") == 5  # the good first line was not stored either
    done = cm(*b, "bank", "add", "--profile", "P", "--jsonl", "-", stdin="\n".join(lines[:2]))
    assert done.returncode == 0 and len(done.stdout.split()) == 2
    assert bank.rating_count("P") == 7
    bank.close()


def test_subprocess_backup_and_restore(tmp_path, responses_file):
    bank_file = tmp_path / "bank.sqlite3"
    b = ["--bank", str(bank_file)]
    assert cm(*b, "profile", "create", "P", "--responses", str(responses_file)).returncode == 0
    copy = tmp_path / "copy.sqlite3"
    done = cm(*b, "bank", "backup", "--to", str(copy))
    assert done.returncode == 0 and copy.stat().st_mode & 0o777 == 0o600
    assert cm(*b, "profile", "delete", "P").returncode == 0
    done = cm(*b, "bank", "restore", str(copy))
    assert done.returncode == 0, done.stderr
    bank = DiscrepancyBank(bank_file)
    assert [p.name for p in bank.list_profiles()] == ["P"]
    bank.close()


HOSTILE = "\x1b]0;owned\x07\x1b[2J\x9b31m\x7f\u202e"


def _unsafe_characters(text: str) -> list[str]:
    """Characters a terminal would act on (any C0 except newline, DEL, C1)."""
    return sorted({c for c in text if (ord(c) < 32 and c != "\n") or 0x7f <= ord(c) <= 0x9f})


def test_bank_text_is_printed_inert_and_stored_exact(capsys, bank_file):
    """A profile, responses and ratings carrying terminal control sequences (as a third-party
    paper file can): every listing shows them escaped; the bank keeps them exact."""
    responses = [f"card{HOSTILE}arrival", "refund", f"lost{HOSTILE}"]
    name = "P\x9b2J\x7f"  # C1 and DEL pass the profile-name rule (no C0), so they must be escaped
    bank = DiscrepancyBank(bank_file)
    bank.create_profile(name, responses, description=f"mine{HOSTILE}")
    for i in range(3):
        bank.add_rating(name, f"query{HOSTILE}{i}", responses[i], responses[(i + 1) % 3])
    b = ["--bank", str(bank_file)]
    for argv in (["profile", "list"], ["profile", "show", name, "--all"],
                 ["bank", "show", "--profile", name], ["bank", "undo", "--profile", name]):
        code, out, err = run_main(capsys, *b, *argv)
        assert code == 0, err
        assert _unsafe_characters(out + err) == [], (argv, out)
        assert "\\x1b]0;owned\\x07" in out or "\\x9b" in out, (argv, out)
    code, _, err = run_main(capsys, *b, "bank", "show", "--profile", f"nope{HOSTILE}")
    assert code != 0 and _unsafe_characters(err) == [], err
    assert bank.get_profile(name).responses == tuple(responses)
    assert sorted(r.instance for r in bank.ratings(name)) == [f"query{HOSTILE}{i}"
                                                               for i in range(2)]
    bank.close()


def test_inputs_must_be_regular_files_and_are_capped(tmp_path, responses_file):
    """A FIFO, a device or an oversized file given to any input option is one clear error at
    once (before: a FIFO hung `cm bank import` forever, /dev/zero ran out of memory)."""
    bank_file = tmp_path / "bank.sqlite3"
    b = ["--bank", str(bank_file)]
    assert cm(*b, "profile", "create", "P", "--responses", str(responses_file)).returncode == 0
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as f:
        f.truncate(65 * 2**20)  # sparse: past the 64 MiB cap without writing it
    for argv, expected in [
        (["bank", "import", str(fifo), "--profile", "P"], "not a regular file"),
        (["bank", "add", "--profile", "P", "--jsonl", str(fifo)], "not a regular file"),
        (["bank", "add", "--profile", "P", "--jsonl", "/dev/zero"], "not a regular file"),
        (["profile", "create", "Q", "--responses", str(fifo)], "not a regular file"),
        (["profile", "create", "Q", "--responses", "/dev/zero"], "not a regular file"),
        (["profile", "create", "Q", "--from-dataset", str(fifo)], "not a regular file"),
        (["profile", "create", "Q", "--responses", str(big)], "MiB limit"),
        (["bank", "add", "--profile", "P", "--jsonl", str(big)], "MiB limit"),
        (["profile", "create", "Q", "--from-dataset", str(big)], "MiB limit"),
    ]:
        done = cm(*b, *argv)
        assert_one_line_error(done.returncode, done.stderr, expected)
    assert DiscrepancyBank(bank_file).rating_count("P") == 0


def test_bank_add_reads_json_lines_holding_a_line_separator(tmp_path, responses_file):
    """U+2028 inside a JSON string (json.dumps(ensure_ascii=False) writes it raw) is text: only
    "\\n" ends a line (before: str.splitlines cut the line there and rejected it)."""
    bank_file = tmp_path / "bank.sqlite3"
    b = ["--bank", str(bank_file)]
    assert cm(*b, "profile", "create", "P", "--responses", str(responses_file)).returncode == 0
    instance = "my card\u2028has not arrived\u2029yet\x85"
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"instance": instance, "model_response": R[0],
                                "user_response": R[1]}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    done = cm(*b, "bank", "add", "--profile", "P", "--jsonl", str(rows))
    assert done.returncode == 0, done.stderr
    bank = DiscrepancyBank(bank_file)
    assert [r.instance for r in bank.ratings("P")] == [instance]
    bank.close()


def test_messages_name_the_problem_not_python_internals(capsys, bank_file, responses_file,
                                                       tmp_path):
    b = ["--bank", str(bank_file)]
    run_main(capsys, *b, "profile", "create", "P", "--responses", str(responses_file))
    bank = DiscrepancyBank(bank_file)
    bank.add_rating("P", "q", R[0], R[1])
    bank.close()
    code, _, err = run_main(capsys, *b, "bank", "export", "", "--profile", "P")
    assert_one_line_error(code, err, "empty name")
    assert "unexpected" not in err
    code, out, err = run_main(capsys, *b, "bank", "undo", "--profile", "P", "-n",
                              "99999999999999999999")
    assert code == 0 and "removed 1 ratings" in out, err
    target = tmp_path / "no such folder" / "out.json"
    code, _, err = run_main(capsys, *b, "bank", "export", str(target), "--profile", "P")
    assert_one_line_error(code, err, str(target))
    assert ".partial" not in err and ".tmp" not in err
    huge = tmp_path / "huge.json"
    huge.write_text('{"format": "cm-desktop-bank", "version": ' + "9" * 5000 + "}",
                    encoding="utf-8")
    code, _, err = run_main(capsys, *b, "bank", "import", str(huge), "--profile", "P")
    assert_one_line_error(code, err, "more than 4300 digits")
    assert "set_int_max_str_digits" not in err


def test_a_paper_file_may_have_a_model_response_called_format(capsys, bank_file,
                                                              responses_file, tmp_path):
    b = ["--bank", str(bank_file)]
    run_main(capsys, *b, "profile", "create", "P", "--responses", str(responses_file))
    paper = tmp_path / "paper.json"
    paper.write_text(json.dumps({"format": [R[0]], R[1]: [R[2]]}), encoding="utf-8")
    code, out, err = run_main(capsys, *b, "bank", "import", str(paper), "--profile", "P")
    assert code == 0 and "imported 2 ratings" in out, err
    bank = DiscrepancyBank(bank_file)
    assert bank.counts("P") == {("format", R[0]): 1, (R[1], R[2]): 1}
    bank.close()


def test_the_bank_must_be_a_regular_file(tmp_path):
    fifo = tmp_path / "pipe.sqlite3"
    os.mkfifo(fifo)
    for target in ("/dev/null", str(fifo)):
        journal_existed = Path(target + "-journal").exists()
        done = cm("--bank", target, "profile", "list")
        assert_one_line_error(done.returncode, done.stderr, "not a regular file")
        assert Path(target + "-journal").exists() == journal_existed


def test_an_existing_empty_file_becomes_an_owner_only_bank(tmp_path, responses_file):
    empty = tmp_path / "empty.sqlite3"
    empty.touch(mode=0o644)
    empty.chmod(0o644)
    done = cm("--bank", str(empty), "profile", "create", "P", "--responses", str(responses_file))
    assert done.returncode == 0, done.stderr
    assert empty.stat().st_mode & 0o777 == 0o600


def test_folders_the_app_creates_are_owner_only_under_umask_0(tmp_path, responses_file):
    home = tmp_path / "a" / "b" / "home"
    bank_file = tmp_path / "c" / "d" / "bank.sqlite3"
    full_env = dict(os.environ, PYTHONPATH=str(REPO), CM_DESKTOP_HOME=str(home))
    done = subprocess.run([sys.executable, "-m", "cm_desktop.cli.main", "--bank", str(bank_file),
                           "profile", "create", "P", "--responses", str(responses_file)],
                          capture_output=True, text=True, env=full_env, timeout=120,
                          preexec_fn=lambda: os.umask(0))
    assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, "-m", "cm_desktop.cli.main", "--bank", str(bank_file),
                           "bank", "backup"], capture_output=True, text=True, env=full_env,
                          timeout=120, preexec_fn=lambda: os.umask(0))
    assert done.returncode == 0, done.stderr
    for folder in (tmp_path / "a", tmp_path / "a" / "b", home, home / "backups",
                   tmp_path / "c", tmp_path / "c" / "d"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
