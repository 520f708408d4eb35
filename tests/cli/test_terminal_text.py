"""Text printed on a terminal is inert: control characters show escaped, never act."""

from __future__ import annotations

from cm_desktop.cli.terminal_text import inert


def test_control_sequences_are_escaped_and_plain_text_is_kept():
    hostile = "a\x1b]0;owned\x07b\x1b[2Jc\x9bd\x7fe\u202ef\u2028g\ud800h"
    shown = inert(hostile)
    assert shown == ("a\\x1b]0;owned\\x07b\\x1b[2Jc\\x9bd\\x7fe\\u202ef\\u2028g\\ud800h")
    assert inert("Grüße, 日本語 – café") == "Grüße, 日本語 – café"


def test_newlines_are_escaped_in_one_line_text_and_kept_when_asked():
    assert inert("one\ntwo\tthree") == "one\\x0atwo\\x09three"
    assert inert("one\ntwo\x1b", keep_newlines=True) == "one\ntwo\\x1b"


def test_escaping_is_idempotent():
    once = inert("x\x1b[31my\x9bz")
    assert inert(once) == once
