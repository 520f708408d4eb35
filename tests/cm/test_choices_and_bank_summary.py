"""What the views show, computed without Qt: the response filter, the top choices for keys 1-9,
the Bank view's snapshot and the removal of whole entries, and the engine session's cache."""

from __future__ import annotations

import pytest

from cm_desktop.cancel import Cancelled, CancelToken
from cm_desktop.cm.bank_summary import load_snapshot, remove_pairs
from cm_desktop.cm.choices import filter_responses, top_choices
from cm_desktop.cm.engine import TOP_N, Trace
from cm_desktop.cm.session import EngineSession

RESPONSES = ["card arrival", "lost or stolen card", "request refund", "top up failed"]


def _trace(model_response, model_top, scores=None):
    return Trace(query="q", strategy="vanilla", variant="none", model_response=model_response,
                 model_top=model_top, candidates=[], chosen=model_response, rule="model", passes=1,
                 seconds=0.1, scores=scores or {})


def test_filter_keeps_responses_with_every_word_prefix_matches_first():
    assert filter_responses(RESPONSES, "") == RESPONSES
    assert filter_responses(RESPONSES, "CARD") == ["card arrival", "lost or stolen card"]
    assert filter_responses(RESPONSES, "card lost") == ["lost or stolen card"]
    assert filter_responses(RESPONSES, "up top") == ["top up failed"]     # words in any order
    assert filter_responses(["my card", "card arrival"], "card") == ["card arrival", "my card"]
    assert filter_responses(RESPONSES, "refund request") == ["request refund"]
    assert filter_responses(RESPONSES, "nothing like it") == []


def test_top_choices_put_the_model_response_first_and_stop_at_nine():
    scores = {f"r{i}": 1.0 / (i + 1) for i in range(12)}
    trace = _trace("r3", [("r0", 0.5), ("r1", 0.3)], scores)
    top = top_choices(trace)
    assert len(top) == TOP_N == 9
    assert top[0] == ("r3", scores["r3"])
    assert [r for r, _ in top[1:]] == ["r0", "r1", "r2", "r4", "r5", "r6", "r7", "r8"]
    assert top_choices(None) == []
    # without full scores, the model's top list is used
    assert top_choices(_trace("b", [("a", 0.6), ("b", 0.4)])) == [("b", 0.4), ("a", 0.6)]


def test_explain_names_the_candidates_neighbours_rule_and_choice():
    trace = _trace("card arrival", [("card arrival", 0.7), ("request refund", 0.2)])
    trace.candidates, trace.chosen, trace.rule = [("lost or stolen card", 3)], "lost or stolen card", "paper-single"
    trace.neighbours = [("where   is\nmy card", "lost or stolen card", 0.91)]
    text = trace.explain()
    assert "Raw model response:  card arrival" in text
    assert "lost or stolen card ×3" in text
    assert "“where is my card” → lost or stolen card  (similarity 0.91)" in text
    assert "rule paper-single" in text and "chosen: lost or stolen card" in text
    assert "none (you have not rated" in _trace("x", [("x", 1.0)]).explain()


@pytest.fixture
def filled(bank):
    bank.create_profile("me", RESPONSES)
    for i, (a, b) in enumerate([("card arrival", "card arrival")] * 3 + [("card arrival", "request refund")]
                               + [("top up failed", "top up failed"), ("off the list", "card arrival")]):
        bank.add_rating("me", f"query {i}", a, b)
    return bank


def test_snapshot_matches_the_bank(filled):
    snap = load_snapshot(filled, "me")
    assert snap.profile == "me" and snap.responses == RESPONSES
    got = {(e.model_response, e.user_response): (e.count, round(e.share, 3), e.agrees) for e in snap.entries}
    assert got == {("card arrival", "card arrival"): (3, 0.75, True),
                   ("card arrival", "request refund"): (1, 0.25, False),
                   ("top up failed", "top up failed"): (1, 1.0, True),
                   ("off the list", "card arrival"): (1, 1.0, False)}
    # response-set order first, the raw model response last
    assert snap.entries[-1].model_response == "off the list"
    assert snap.stats["ratings"] == 6
    assert snap.matrix.counts.sum() == 5 and snap.matrix.raw_model_responses == ["off the list"]
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        load_snapshot(filled, "me", token)


def test_remove_pairs_is_all_or_nothing(filled):
    removed = remove_pairs(filled, "me", [("card arrival", "card arrival"), ("top up failed", "top up failed")])
    assert len(removed) == 4
    assert set(filled.counts("me")) == {("card arrival", "request refund"), ("off the list", "card arrival")}
    assert remove_pairs(filled, "me", [("request refund", "card arrival")]) == []
    before = filled.counts("me")
    with pytest.raises(Exception):
        remove_pairs(filled, "me", [("card arrival", "request refund"), None])  # the second is bad
    assert filled.counts("me") == before


def test_session_without_a_model_says_so_and_marks_profiles_stale(bank):
    session = EngineSession(bank, lambda: {})
    assert not session.has_backend
    with pytest.raises(RuntimeError, match="loading"):
        session.backend
    session.backend_error = OSError("no such file")
    with pytest.raises(RuntimeError, match="not loaded: no such file"):
        session.engine_for("me")
    session.mark_stale("me")          # any thread; read by the next engine_for
    session.close()
