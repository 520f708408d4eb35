"""`cm chat`, `cm conversation ...` and `cm profile guidance`: the chat kept in the bank.

The conversation commands and guidance run in process through main(argv) on a real bank; `cm
chat` runs the real embedded model, in process and as a scripted subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bank_store import DiscrepancyBank
from cm_desktop.cli.main import main

REPO = Path(__file__).resolve().parents[2]
R = ["card arrival", "lost or stolen card", "pending transfer", "request refund"]
GUIDANCE = "Cards arrive within 3-5 working days."


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, expected: str) -> None:
    assert code != 0 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cm: error: ") and expected in lines[0], err


@pytest.fixture
def bank_file(tmp_path) -> Path:
    path = tmp_path / "bank.sqlite3"
    with DiscrepancyBank(path) as bank:
        bank.create_profile("P", R)
    return path


def _stored_conversation(bank_file: Path, title: str = "Card") -> int:
    with DiscrepancyBank(bank_file) as bank:
        conv = bank.create_conversation("P", title)
        bank.add_message(conv.id, "user", "Where is my card?\x1b[31m")
        bank.add_message(conv.id, "assistant", "It arrives in 3-5 days.", response=R[0])
        rating = bank.add_rating("P", "Where is my card?", R[0], R[0])
        return conv.id, rating


# ---- guidance -----------------------------------------------------------------------------------

def test_guidance_set_show_from_file_and_clear(bank_file, tmp_path, capsys):
    b = ["--bank", str(bank_file)]
    assert run(capsys, *b, "profile", "guidance", "P", "card arrival", GUIDANCE)[0] == 0
    code, out, _ = run(capsys, *b, "profile", "guidance", "P", "CARD arrival")
    assert code == 0 and out.strip() == GUIDANCE
    code, out, _ = run(capsys, *b, "profile", "show", "P")
    assert "1 with guidance" in out and f"card arrival  -- {GUIDANCE}" in out
    f = tmp_path / "g.txt"
    f.write_text("Freeze the card in the app.\n", encoding="utf-8")
    assert run(capsys, *b, "profile", "guidance", "P", "lost or stolen card", "--file",
               str(f))[0] == 0
    code, out, _ = run(capsys, *b, "profile", "guidance", "P")
    assert code == 0 and "Freeze the card in the app." in out and GUIDANCE in out
    assert run(capsys, *b, "profile", "guidance", "P", "card arrival", "--clear")[0] == 0
    with DiscrepancyBank(bank_file) as bank:
        assert bank.guidance("P") == {"lost or stolen card": "Freeze the card in the app."}


@pytest.mark.parametrize("argv, expected", [
    (["P", "card arrival", "text", "--clear"], "at most one of"),
    (["P", "no such response", "text"], "no response 'no such response'"),
    (["P", "card arrival", "--file", "/nonexistent/g.txt"], "no such file"),
    (["P", "card arrival", "   "], "--clear"),
    (["Nobody", "card arrival", "x"], "Nobody"),
])
def test_guidance_mistakes_are_one_line_and_change_nothing(bank_file, capsys, argv, expected):
    code, _, err = run(capsys, "--bank", str(bank_file), "profile", "guidance", *argv)
    one_line_error(code, err, expected)
    with DiscrepancyBank(bank_file) as bank:
        assert bank.guidance("P") == {}


# ---- conversations ------------------------------------------------------------------------------

def test_list_json_show_export_delete(bank_file, tmp_path, capsys):
    b = ["--bank", str(bank_file)]
    cid, rating = _stored_conversation(bank_file)
    code, out, _ = run(capsys, *b, "conversation", "list", "--profile", "P", "--json")
    listed = json.loads(out)
    assert code == 0 and [(c["id"], c["title"], c["messages"]) for c in listed] == \
        [(cid, "Card", 2)]
    assert listed[0]["updated"]
    code, out, _ = run(capsys, *b, "conversation", "list", "--profile", "P", "--search", "nope")
    assert code == 0 and "no conversations" in out
    code, out, _ = run(capsys, *b, "conversation", "show", str(cid))
    # the escape sequence a message carried is shown inert
    assert code == 0 and "\x1b" not in out and "\\x1b[31m" in out
    assert "assistant [card arrival]: It arrives in 3-5 days." in out
    md = tmp_path / "chat.md"
    assert run(capsys, *b, "conversation", "export", str(cid), str(md))[0] == 0
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# Card\n") and "It arrives in 3-5 days." in text
    code, _, err = run(capsys, *b, "conversation", "export", str(cid), str(md))
    one_line_error(code, err, "--force")
    assert run(capsys, *b, "conversation", "delete", str(cid))[0] == 0
    code, _, err = run(capsys, *b, "conversation", "show", str(cid))
    one_line_error(code, err, f"no conversation with id {cid}")
    with DiscrepancyBank(bank_file) as bank:
        assert bank.ratings("P") == [rating]


@pytest.mark.parametrize("argv, expected", [
    (["conversation", "show", "abc"], "whole number"),
    (["conversation", "delete", "0"], "positive"),
    (["conversation", "list", "--profile", "Nobody"], "Nobody"),
    (["chat"], "--profile"),
    (["chat", "--profile", "P", "--max-tokens", "0"], "between 1 and 8192"),
])
def test_conversation_and_chat_mistakes_are_one_line(bank_file, capsys, argv, expected):
    try:
        code = main(["--bank", str(bank_file), *argv])
    except SystemExit as e:         # a usage mistake: argparse exits with status 2
        code = e.code
    one_line_error(code, capsys.readouterr().err, expected)


# ---- cm chat on the real model ------------------------------------------------------------------

@pytest.mark.slow
def test_chat_keeps_the_conversation_and_continues_it(bank_file, monkeypatch, capsys):
    with DiscrepancyBank(bank_file) as bank:
        bank.set_guidance("P", "card arrival", GUIDANCE)
        for x in ("where is my new card", "my card has not come yet"):
            bank.add_rating("P", x, "pending transfer", "card arrival")
    b = ["--bank", str(bank_file)]
    monkeypatch.setattr("sys.stdin", io.StringIO("my card still has not come\n/why\n"
                                                 "and how long does it take?\n"))
    code, out, err = run(capsys, *b, "chat", "--profile", "P", "--max-tokens", "24",
                         "--temperature", "0", "--threads", "2")
    assert code == 0, err
    assert "chosen:" in out and "rule evidence" in out      # /why (the default rule)
    with DiscrepancyBank(bank_file) as bank:
        (summary,) = bank.conversations("P")
        conv = bank.conversation(summary.id)
    assert [m.role for m in conv.messages] == ["user", "assistant"] * 2
    assert conv.title == "my card still has not come"
    first_reply = conv.messages[1]
    assert first_reply.response in R and first_reply.trace["chosen"] == first_reply.response
    assert first_reply.text.strip() and first_reply.text.strip() in out
    assert f"[{first_reply.response}]" in err               # the meaning goes to stderr

    monkeypatch.setattr("sys.stdin", io.StringIO("thanks, and a refund?\n"))
    code, out, err = run(capsys, *b, "chat", "--conversation", str(conv.id), "--max-tokens", "16",
                         "--threads", "2")
    assert code == 0, err
    with DiscrepancyBank(bank_file) as bank:
        again = bank.conversation(conv.id)
    assert again.messages[:4] == conv.messages and len(again.messages) == 6


@pytest.mark.slow
def test_chat_as_a_scripted_subprocess_prints_one_reply_per_message(bank_file):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "cm_desktop.cli.main", "--bank", str(bank_file), "chat",
         "--profile", "P", "--max-tokens", "12", "--threads", "2"],
        input="where is my card\nI lost my card\n", capture_output=True, text=True, env=env,
        timeout=600)
    assert proc.returncode == 0, proc.stderr
    with DiscrepancyBank(bank_file) as bank:
        (summary,) = bank.conversations("P")
        replies = [m.text for m in bank.conversation(summary.id).messages
                   if m.role == "assistant"]
    assert len(replies) == 2
    assert proc.stdout == "".join(r + "\n" for r in replies)
