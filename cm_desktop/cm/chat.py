"""One chat turn, shared by `cm chat` and the app's Chat view: what CM decides on, the answer
prompt within the model's context, and the reply as the user sees it.

A turn: decide with `decide_turn(engine, message, history)` (a follow-up is decided alone and
together with the previous user turn, and the more confident decision kept: FOLLOWUP_RULE), build
`reply_messages(...)` from the chosen response, its guidance and the conversation so far, and
stream the reply through `clean_reply`, which ends it where the model starts writing prompt text
or a new turn.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Mapping, Sequence

from cm_desktop.cm import strategies as st

# How a message is decided when earlier user turns exist: "alone" (the message only),
# "with_previous" (the previous user turn, then the message), or "more_confident" (both, and the
# decision whose top score is higher: a follow-up alone says little and a new subject says much).
# Measured by benchmarks/answer_bench.py on the written two-turn pairs of
# benchmarks/data/followups.jsonl (20 that keep the thread, 20 that change the subject, 5 of them
# with a marker such as "By the way") with a 100-rating Banking77 bank, evidence memory: right
# meaning for 29 of 40 with "more_confident" (11 / 20 thread, 18 / 20 change), 21 of 40 with
# "with_previous" (13 / 20, 8 / 20), 21 of 40 with "alone" (2 / 20, 19 / 20). It costs a second
# decision (one model pass) for each message after the first.
FOLLOWUP_RULES = ("alone", "with_previous", "more_confident")
FOLLOWUP_RULE = "more_confident"


# Tokens kept free for the reply besides max_tokens (stop strings, the role marker).
_REPLY_MARGIN = 16
DEFAULT_CONTEXT = 4096

# Text that must never reach the user: the note's labels, the instruction, new turns.
LEAK_MARKERS = ("[" + st.NOTE_MEANING, st.NOTE_MEANING + ":", st.NOTE_GUIDANCE + ":",
                st.TRANSCRIPT_NOTE + ":", "User:", "Assistant:", "System:",
                "Each user message comes with a note", "what it was told to tell them")


def previous_user_turn(history: Sequence[dict]) -> str | None:
    for m in reversed(history):
        if m.get("role") == "user":
            return m.get("content") or None
    return None


def decision_texts(message: str, history: Sequence[dict] = (),
                   rule: str = FOLLOWUP_RULE) -> list[str]:
    """What CM decides on for `message` given the conversation so far: one text, or (the rule
    "more_confident" on a follow-up) the message alone and with the previous user turn."""
    if rule not in FOLLOWUP_RULES:
        raise ValueError(f"unknown follow-up rule {rule!r}; choose one of {FOLLOWUP_RULES}")
    previous = previous_user_turn(history)
    if rule == "alone" or previous is None:
        return [message]
    together = f"{previous.strip()} {message.strip()}"
    return [together] if rule == "with_previous" else [message, together]


def confidence(trace) -> float:
    """How sure a decision is: its chosen response's score (the top of its posterior)."""
    return max(trace.scores.values(), default=0.0)


def decide_turn(engine, message: str, history: Sequence[dict] = (), rule: str = FOLLOWUP_RULE,
                cancel=None):
    """CM's decision (a Trace) for `message` in the conversation so far, by `rule`; of two
    decisions the more confident, the message alone on a tie. The trace's query is the text it
    decided on; with two, its passes and seconds are both decisions' and `followup` says which
    was kept."""
    traces = [engine.decide(text, cancel=cancel)
              for text in decision_texts(message, history, rule)]
    kept = max(traces, key=confidence)
    if len(traces) == 2:
        alone, together = traces
        kept.passes = alone.passes + together.passes
        kept.seconds = alone.seconds + together.seconds
        kept.followup = (
            f"decided {'on this message alone' if kept is alone else 'with your previous message'}"
            f" (top score {confidence(alone):.2f} alone, {confidence(together):.2f} with the "
            f"previous message)")
    return kept


def token_counter(backend) -> Callable[[str], int]:
    """The backend's own token count when it has one, else an estimate that does not fall short
    of a real tokenizer's for ordinary text (about 3 characters a token, real ones ~4)."""
    count = getattr(backend, "count_tokens", None)
    if callable(count):
        return count
    return lambda text: len(text) // 3 + 1


def context_tokens(backend) -> int:
    n = getattr(backend, "n_ctx", None)
    return int(n) if isinstance(n, int) and n > 0 else DEFAULT_CONTEXT


def reply_messages(backend, message: str, chosen: str, guidance: str = "",
                   history: Sequence[dict] = (), max_tokens: int = 160,
                   guidance_of: Mapping[str, str] | None = None) -> list[dict]:
    """The answer prompt for `message`, fitted into the backend's context with room for
    `max_tokens` of reply (the oldest turns dropped first, counted in the model's tokens).
    `history`: the conversation so far; an assistant turn may name the response it was written
    for (`meaning`), whose guidance `guidance_of` gives (the profile's, see st.chat_messages)."""
    budget = max(context_tokens(backend) - int(max_tokens) - _REPLY_MARGIN, 1)
    return st.chat_messages(message, chosen, history, guidance,
                            count_tokens=token_counter(backend), budget=budget,
                            transcript=getattr(backend, "chat_mode", "") == "transcript",
                            guidance_of=guidance_of)


def history_messages(messages: Iterable) -> list[dict]:
    """A stored conversation's turns (bank_store Message records) as chat messages; replies
    that were never written (empty) are left out with the user turn they answer kept. A reply
    keeps the response it was written for as its `meaning`."""
    out = []
    for m in messages:
        if m.role == "assistant" and not m.text.strip():
            continue
        turn = {"role": m.role, "content": m.text}
        if m.role == "assistant" and m.response:
            turn["meaning"] = m.response
        out.append(turn)
    return out


def leak_position(text: str) -> int:
    """Where the first prompt marker starts in `text`, or -1."""
    found = [i for i in (text.find(m) for m in LEAK_MARKERS) if i >= 0]
    return min(found) if found else -1


def _held_prefix(text: str) -> int:
    """Length of the longest end of `text` that could begin a marker (held back, not shown)."""
    longest = max(map(len, LEAK_MARKERS))
    for n in range(min(len(text), longest - 1), 0, -1):
        tail = text[-n:]
        if any(m.startswith(tail) for m in LEAK_MARKERS):
            return n
    return 0


def clean_reply(pieces: Iterable[str]) -> Iterator[str]:
    """The reply as shown: pieces pass through until a prompt marker appears; the reply ends
    there (the generator of pieces is closed, which stops the model). Leading and trailing blank
    space is not shown."""
    shown = ""
    pending = ""
    source = iter(pieces)
    try:
        for piece in source:
            pending += piece
            cut = leak_position(pending)
            if cut >= 0:
                out = pending[:cut].rstrip()
                if not shown:
                    out = out.lstrip()
                if out:
                    yield out
                return
            hold = _held_prefix(pending)
            out, pending = pending[:len(pending) - hold], pending[len(pending) - hold:]
            # blank space is shown only once text follows it (a cut drops it)
            kept = out.rstrip()
            out, pending = kept, out[len(kept):] + pending
            if not shown:
                out = out.lstrip()
            if out:
                shown += out
                yield out
        tail = pending.rstrip() if shown else pending.strip()
        if tail:
            yield tail
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
