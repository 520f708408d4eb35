"""The chat turn's pure parts: the answer prompt, fitting it into the context, the follow-up
rule and the reply cleaner (no model needed)."""

from __future__ import annotations

import pytest

from cm_desktop.cm import chat
from cm_desktop.cm import strategies as st

GUIDANCE = "Cards arrive within 3-5 working days. Offer to track it in the app."


def _history(n_exchanges: int) -> list[dict]:
    out = []
    for i in range(n_exchanges):
        out += [{"role": "user", "content": f"question {i} " + "word " * 20},
                {"role": "assistant", "content": f"answer {i} " + "word " * 20}]
    return out


def test_prompt_holds_instruction_worked_turns_history_then_the_guided_message():
    history = _history(2)
    msgs = st.chat_messages("Where is my card?", "card arrival", history, GUIDANCE)
    assert msgs[0]["role"] == "system"
    worked = msgs[1:1 + 2 * len(st._WORKED_TURNS)]
    assert [m["role"] for m in worked] == ["user", "assistant"] * len(st._WORKED_TURNS)
    assert all(st.NOTE_GUIDANCE in m["content"] for m in worked if m["role"] == "user")
    assert msgs[-5:-1] == history
    last = msgs[-1]
    assert last["role"] == "user" and last["content"].startswith("Where is my card?\n[")
    assert "card arrival" in last["content"] and GUIDANCE in last["content"]


def test_without_guidance_the_note_carries_only_the_meaning_and_examples_invent_nothing():
    msgs = st.chat_messages("Where is my card?", "card arrival")
    text = "\n".join(m["content"] for m in msgs)
    assert st.NOTE_GUIDANCE not in text
    assert "card arrival" in msgs[-1]["content"]
    # the unguided worked replies state none of the guided ones' facts
    assert "2-4 working days" not in text and "1 hour" not in text


def test_the_fixed_part_is_the_same_for_every_message_of_a_guided_conversation():
    a = st.chat_messages("one", "card arrival", (), GUIDANCE)
    b = st.chat_messages("two", "lost or stolen card", _history(1), "Freeze the card.")
    n = 1 + 2 * len(st._WORKED_TURNS)
    assert a[:n] == b[:n]


def test_oldest_exchanges_go_first_when_the_context_is_full():
    count = lambda text: len(text.split())  # noqa: E731  (a word a token)
    history = _history(6)
    full = st.chat_messages("now?", "card arrival", history, GUIDANCE, count_tokens=count,
                            budget=10**6)
    assert full[-13:-1] == history
    fixed = sum(count(m["content"]) + 4 for m in full[:-13] + full[-1:])
    per_exchange = sum(count(m["content"]) + 4 for m in history[:2])
    budget = fixed + 3 * per_exchange          # room for exactly three exchanges
    msgs = st.chat_messages("now?", "card arrival", history, GUIDANCE, count_tokens=count,
                            budget=budget)
    assert msgs[-7:-1] == history[-6:]        # the newest three, whole
    assert msgs[:-7] == full[:-13]             # the preamble stays
    assert sum(count(m["content"]) + 4 for m in msgs) <= budget
    # a budget too small for any history or worked turn keeps the instruction and the message
    tiny = st.chat_messages("now?", "card arrival", history, GUIDANCE, count_tokens=count,
                            budget=count(full[0]["content"]) + count(full[-1]["content"]) + 8)
    assert tiny == [full[0], full[-1]]


def test_reply_messages_fit_the_backends_context_with_room_for_the_reply():
    class Small:
        n_ctx = 400

        @staticmethod
        def count_tokens(text):
            return len(text.split()) * 2

    msgs = chat.reply_messages(Small(), "and now?", "card arrival", GUIDANCE, _history(10),
                               max_tokens=100)
    used = sum(Small.count_tokens(m["content"]) + 4 for m in msgs)
    assert used <= 400 - 100
    assert msgs[-1]["content"].startswith("and now?") and len(msgs) < 1 + 4 + 20 + 1


@pytest.mark.parametrize("rule, expected", [
    ("alone", ["how long does that take?"]),
    ("with_previous", ["my card hasn't come how long does that take?"]),
    ("more_confident", ["how long does that take?", "my card hasn't come how long does that take?"])])
def test_followup_rules(rule, expected):
    history = [{"role": "user", "content": "my card hasn't come"},
               {"role": "assistant", "content": "Sorry to hear that."}]
    assert chat.decision_texts("how long does that take?", history, rule) == expected
    # a first message is decided alone whatever the rule
    assert chat.decision_texts("first", [], rule) == ["first"]
    with pytest.raises(ValueError, match="follow-up rule"):
        chat.decision_texts("x", history, "magic")


class ScoresByText:
    """An engine whose decision for a text is set in advance: (chosen, top score)."""

    def __init__(self, decisions):
        self.decisions, self.asked = decisions, []

    def decide(self, text, cancel=None):
        from cm_desktop.cm.engine import Trace

        self.asked.append(text)
        chosen, top = self.decisions[text]
        return Trace(text, "vanilla", "evidence", chosen, [], [], chosen, "evidence", 1, 0.0,
                     scores={chosen: top, "other": top / 2})


def test_a_followup_keeps_the_more_confident_decision():
    history = [{"role": "user", "content": "When is my new card going to arrive?"},
               {"role": "assistant", "content": "Cards arrive within 3-5 working days."}]
    together = "When is my new card going to arrive? How do I activate it?"
    # a new subject: the message alone is surer
    engine = ScoresByText({"How do I activate it?": ("activate my card", 0.6),
                           together: ("card arrival", 0.3)})
    trace = chat.decide_turn(engine, "How do I activate it?", history)
    assert (trace.chosen, trace.query) == ("activate my card", "How do I activate it?")
    assert engine.asked == ["How do I activate it?", together]
    # the Why panel says so, and counts both decisions' passes
    assert trace.passes == 2
    assert "Follow-up: decided on this message alone (top score 0.60 alone, 0.30 with the " \
        "previous message)" in trace.explain()
    assert type(trace).from_dict(trace.to_dict()).followup == trace.followup
    # the thread kept: with the previous turn it is surer
    engine = ScoresByText({"How do I activate it?": ("activate my card", 0.2),
                           together: ("card arrival", 0.3)})
    trace = chat.decide_turn(engine, "How do I activate it?", history)
    assert trace.query == together and "decided with your previous message" in trace.explain()
    # a tie goes to the message alone; a first message costs one decision
    engine = ScoresByText({"How do I activate it?": ("activate my card", 0.3),
                           together: ("card arrival", 0.3)})
    assert chat.decide_turn(engine, "How do I activate it?", history).chosen == "activate my card"
    engine = ScoresByText({"How do I activate it?": ("activate my card", 0.3)})
    trace = chat.decide_turn(engine, "How do I activate it?", [])
    assert engine.asked == ["How do I activate it?"]
    assert trace.passes == 1 and "Follow-up" not in trace.explain()


@pytest.mark.parametrize("pieces, shown", [
    (["Your card ", "arrives in 3-5 ", "days."], "Your card arrives in 3-5 days."),
    (["  Sure. ", "It is free.\nUs", "er: next question"], "Sure. It is free."),
    (["Cards arrive soon. [What the user", " means: card arrival.]"], "Cards arrive soon."),
    (["Done.\nWhat the reply must say: x"], "Done."),
    (["Hi\nAssist", "ant: more"], "Hi"),
    (["Use", "r names are fine"], "User names are fine"),
    (["[What the user means: x]"], ""),
])
def test_clean_reply_ends_at_prompt_text_and_never_shows_part_of_a_marker(pieces, shown):
    out = list(chat.clean_reply(pieces))
    assert "".join(out) == shown
    assert chat.leak_position("".join(out)) == -1


def test_clean_reply_closes_the_model_stream_when_it_cuts():
    closed = []

    def stream():
        try:
            yield "Fine.\nUser: what"
            yield "never asked for"
        finally:
            closed.append(True)

    assert "".join(chat.clean_reply(stream())) == "Fine."
    assert closed == [True]


def test_history_messages_skip_empty_replies():
    from bank_store import Message

    msgs = [Message(1, "user", "a"), Message(2, "assistant", ""), Message(3, "user", "b"),
            Message(4, "assistant", "B", "r")]
    assert chat.history_messages(msgs) == [
        {"role": "user", "content": "a"}, {"role": "user", "content": "b"},
        {"role": "assistant", "content": "B", "meaning": "r"}]


def test_earlier_replies_get_their_notes_again_in_the_transcript_layout_only():
    history = [{"role": "user", "content": "Where is my card?"},
               {"role": "assistant", "content": "It comes in 3-5 days.", "meaning": "card arrival"},
               {"role": "user", "content": "I lost it"},
               {"role": "assistant", "content": "Freeze it.", "meaning": "lost or stolen card"},
               {"role": "user", "content": "hello"},
               {"role": "assistant", "content": "Hi."}]          # written before meanings were kept
    notes = {"card arrival": GUIDANCE}
    msgs = st.chat_messages("and now?", "card arrival", history, GUIDANCE, transcript=True,
                            guidance_of=notes)
    n = 1 + 3 * len(st._WORKED_TURNS)
    assert msgs[n:-2] == [
        history[0], {"role": "system", "content": f"{st.TRANSCRIPT_NOTE}: {GUIDANCE}"},
        {"role": "assistant", "content": "It comes in 3-5 days."},
        history[2], {"role": "system", "content": f"{st.NOTE_MEANING}: lost or stolen card."},
        {"role": "assistant", "content": "Freeze it."}, history[4], history[5]]
    # a chat model keeps the plain turns
    chatty = st.chat_messages("and now?", "card arrival", history, GUIDANCE, guidance_of=notes)
    assert chatty[1 + 2 * len(st._WORKED_TURNS):-1] == [
        {"role": m["role"], "content": m["content"]} for m in history]
    # the oldest exchange goes with its note when the context is full
    count = lambda text: len(text.split())  # noqa: E731  (a word a token)
    full = st.chat_messages("and now?", "card arrival", history, GUIDANCE, transcript=True,
                            guidance_of=notes, count_tokens=count, budget=10**6)
    fitted = st.chat_messages("and now?", "card arrival", history, GUIDANCE, transcript=True,
                              guidance_of=notes, count_tokens=count,
                              budget=sum(count(m["content"]) + 4 for m in full) - 1)
    assert fitted == full[:n] + full[n + 3:]


def test_transcript_layout_puts_the_note_as_a_system_line_right_after_the_message():
    history = _history(1)
    msgs = st.chat_messages("Where is my card?", "card arrival", history, GUIDANCE,
                            transcript=True)
    # the note is the nearest text to the reply
    assert msgs[-2] == {"role": "user", "content": "Where is my card?"}
    assert msgs[-1] == {"role": "system", "content": f"{st.TRANSCRIPT_NOTE}: {GUIDANCE}"}
    assert msgs[-4:-2] == history
    # each worked reply restates its own note, starting with the note's first fact: the form the
    # model copies (the new note, not the last worked reply)
    worked = msgs[1:1 + 3 * len(st._WORKED_TURNS)]
    for user, note, reply in zip(worked[::3], worked[1::3], worked[2::3]):
        assert (user["role"], note["role"], reply["role"]) == ("user", "system", "assistant")
        told = note["content"].removeprefix(f"{st.TRANSCRIPT_NOTE}: ")
        assert told != note["content"]
        first_fact = told.split(".")[0].split(";")[0]
        assert reply["content"].startswith(first_fact)
    unguided = st.chat_messages("Where is my card?", "card arrival", transcript=True)
    assert unguided[-1] == {"role": "system", "content": f"{st.NOTE_MEANING}: card arrival."}
    assert all(st.TRANSCRIPT_NOTE not in m["content"] for m in unguided)
    # the unguided worked replies state none of the guided ones' facts
    assert not any("2-4 working days" in m["content"] or "1 hour" in m["content"]
                   for m in unguided if m["role"] == "assistant")


def test_reply_messages_use_the_transcript_layout_for_a_transcript_backend():
    class Base:
        chat_mode = "transcript"
        n_ctx = 4096

    class Chatty:
        chat_mode = "chat"
        n_ctx = 4096

    base = chat.reply_messages(Base(), "hi", "card arrival", GUIDANCE)
    chatty = chat.reply_messages(Chatty(), "hi", "card arrival", GUIDANCE)
    assert base[-2]["content"] == "hi" and base[-1]["role"] == "system"
    assert GUIDANCE in base[-1]["content"]
    assert chatty[-1]["content"].startswith("hi\n[") and chatty[-2]["role"] == "assistant"
