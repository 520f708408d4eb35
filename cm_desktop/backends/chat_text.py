"""Chat text rules the local backends share: the plain transcript a base model continues, stop
strings held back across streamed pieces, and the check that ends a reply caught in a loop."""

from __future__ import annotations

from typing import Callable, Sequence

TRANSCRIPT_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
# A base model keeps writing the dialogue: any new turn, its own included, ends the reply.
TRANSCRIPT_STOPS = ("\nUser:", "\nSystem:", "\nAssistant:")
# A base model that continues a transcript often answers by repeating a user turn word for word,
# the message itself or a worked example's. So the reply may not open with a token a user turn
# opens with, unless a reply in the transcript opens with it too (then it is a way replies open).
# Measured with benchmarks/answer_bench.py (100 held-out Banking77 queries, the sample's
# guidance): replies stating a key fact 66 -> 95 of 100.
BAN_ECHO_OPENERS = True

# A reply whose last RUNAWAY_SPAN or more tokens repeat one block of at most RUNAWAY_PERIOD
# tokens (three times at least) is in a loop ("1000000000…", "I have a card. I have a card. …"):
# measured on the embedded model, such a reply never leaves the loop before the token limit.
RUNAWAY_PERIOD = 32
RUNAWAY_SPAN = 24


def is_base_model(metadata: dict) -> bool:
    """True unless the GGUF's name says it was tuned to chat ("it", "instruct", "chat")."""
    name = " ".join(str(metadata.get(k, "")) for k in
                    ("general.finetune", "general.name", "general.basename")).lower()
    words = set(name.replace("-", " ").replace("_", " ").split())
    return not (words & {"it", "instruct", "chat"} or "instruct" in name)


def render_transcript(messages: Sequence[dict]) -> str:
    """Chat messages as a plain dialogue a base model continues with the assistant's reply."""
    turns = [f"{TRANSCRIPT_ROLES[m['role']]}: {m['content'].strip()}" for m in messages]
    return "\n".join(turns) + "\nAssistant:"


def turn_openings(messages: Sequence[dict], role: str) -> list[str]:
    """Each `role` turn's text as it would follow "Assistant:" in a transcript (a space, then the
    text): the turns whose first tokens the reply's first token is checked against."""
    return sorted({" " + m["content"].strip() for m in messages
                   if m.get("role") == role and m.get("content", "").strip()})


def barred_openers(messages: Sequence[dict], token_ids: Callable[[str], Sequence[int]]
                   ) -> list[int]:
    """Tokens a transcript's reply may not begin with (BAN_ECHO_OPENERS): the first token of each
    user turn that is no reply's first token. token_ids: the model's tokenizer, no BOS."""
    if not BAN_ECHO_OPENERS:
        return []

    def firsts(role: str) -> set[int]:
        return {ids[0] for ids in map(token_ids, turn_openings(messages, role)) if len(ids)}
    return sorted(firsts("user") - firsts("assistant"))


def split_stop_prefix(text: str, stops: Sequence[str] = TRANSCRIPT_STOPS) -> tuple[str, str]:
    """(text to show, tail to hold back): the tail is the longest end of `text` that begins a
    stop string, so a reply cut off by max_tokens never ends in a half "\\nUser"."""
    longest = max((len(s) for s in stops), default=0)
    for n in range(min(len(text), longest), 0, -1):
        if any(stop.startswith(text[-n:]) for stop in stops):
            return text[:-n], text[-n:]
    return text, ""


class StopScanner:
    """Feeds a streamed reply through; shows what cannot be part of a stop string yet, ends at
    one. The reply's leading blank space is not shown."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._held = ""
        self._started = False
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The text that may be shown now; sets .stopped once a stop string has appeared."""
        text = self._held + piece
        hits = [text.find(s) for s in self.stops if s in text]
        if hits:
            self._held, self.stopped = "", True
            shown = text[:min(hits)]
        else:
            shown, self._held = split_stop_prefix(text, self.stops)
        if not self._started:
            shown = shown.lstrip()
            self._started = bool(shown)
        return shown


def runaway_repetition(tokens: Sequence[int], *, max_period: int = RUNAWAY_PERIOD,
                       min_span: int = RUNAWAY_SPAN) -> int:
    """The period of the block the end of `tokens` keeps repeating, or 0 if it is not looping.

    Looping means: the last max(min_span, 3 x period) tokens are one block of `period` tokens
    over and over. Cost: O(max_period x span) per call, a few microseconds per token.
    """
    n = len(tokens)
    for period in range(1, max_period + 1):
        span = max(min_span, 3 * period)
        if span > n:
            break
        tail = tokens[n - span:]
        if all(tail[i] == tail[i - period] for i in range(period, span)):
            return period
    return 0
