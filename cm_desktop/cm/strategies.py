"""Prompts for the paper's strategies, and the fixed candidate convention.

Layout, always: the fixed part (instruction + the full response list) first, then the examples,
then the query and the answer cue. The fixed part is identical for every query of a profile, so
the llama_cpp backend keeps its KV cache across queries; never put per-query text before it.

Candidates are scored as continuations " " + response, and a response that is the beginning of
another one ("card arrival" beside "card arrival delayed") gets an end marker "\n", so the two are
disjoint events with different likelihoods. Only those need it: each scored token costs a row of
logits over the whole vocabulary (262,144 for Gemma), so ending every candidate with "\n" would add
|R| such rows to every model pass (on massive_scenario's 18 one-token scenarios it was the pass). The model's answer is
always chosen by scoring the response set - free text is never parsed.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

STRATEGIES = ("vanilla", "cot", "fot", "consistent", "feedback")
FOT_EXAMPLES = 3        # FoT shows the k nearest rated examples; CoT the single nearest


def candidate_text(response: str, ends: bool = False) -> str:
    return " " + response + ("\n" if ends else "")


def candidate_texts(responses: Sequence[str]) -> list[str]:
    """The scored continuations; only a response that begins another one gets the end marker."""
    ordered = sorted(set(responses))
    prefixes = set()
    # an extension sorts after its prefix, not always right after it ("card", "card arrival",
    # "cards"): look at the later responses while they share the first letter
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if not b.startswith(a[:1]):
                break
            if b.startswith(a):
                prefixes.add(a)
                break
    return [candidate_text(r, r in prefixes) for r in responses]


def fixed_part(responses: Sequence[str]) -> str:
    """Instruction + the response list: the prefix every prompt of a profile shares."""
    listing = "\n".join(f"- {r}" for r in responses)
    return ("Classify the message into exactly one of these categories:\n"
            f"{listing}\n\n")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _example_block(examples: Sequence[tuple[str, str]]) -> str:
    return "".join(f"Message: {_one_line(x)}\nCategory: {y}\n\n" for x, y in examples)


def vanilla_prompt(responses: Sequence[str], query: str) -> str:
    return fixed_part(responses) + f"Message: {_one_line(query)}\nCategory:"


def examples_prompt(responses: Sequence[str], query: str,
                    examples: Sequence[tuple[str, str]]) -> str:
    """CoT (one example) and FoT (several): rated (instance, user response) pairs, most similar
    last so the closest example sits next to the query."""
    return (fixed_part(responses) + _example_block(list(examples)[::-1])
            + f"Message: {_one_line(query)}\nCategory:")


def feedback_prompt(responses: Sequence[str], query: str, first_answer: str) -> str:
    """Self-refine: show the model its first answer, ask it to check, then choose again."""
    return (fixed_part(responses) + f"Message: {_one_line(query)}\n"
            f"First answer: {first_answer}\n"
            "Check whether the first answer fits the message; if not, pick the category that does.\n"
            "Checked category:")


def restricted_prompt(candidates: Sequence[str], query: str) -> str:
    """The paper rule's re-choice: the same layout listing only the bank's candidates C(y')."""
    return vanilla_prompt(candidates, query)


# ---- the answer prompt -----------------------------------------------------------------------
# Once CM has decided what the user means, the model writes the reply from a note: the chosen
# meaning and its guidance. The instruction and two worked turns (a different domain from any
# profile's, so the model copies their form, not their facts) come first and never change, so
# they stay a cacheable prefix; then the conversation so far; then the message with its note.
#
# Two layouts. A chat model (its own template) gets the note inside the user's message. A base
# model read as a plain transcript (the embedded Gemma 270M) gets the note as a System line just
# AFTER the user's message, so the note is the nearest text to the reply, and worked replies that
# restate their own note (the first in other words, the second word for word). The model then
# continues the pattern "note, then a reply that says it": on 100 Banking77 queries this stated
# a key fact in most replies (benchmarks/RESULTS.md). With the note before the message the model
# mostly repeated the user's message or the last worked reply instead (2 of 8, 7 layouts tried).
# A System line in mid-conversation is fine in a transcript but refused by some chat templates,
# hence the two.

NOTE_MEANING = "What the user means"
NOTE_GUIDANCE = "What the reply must say"
TRANSCRIPT_NOTE = "What to tell the user"
CHAT_INSTRUCTION = (
    "You are a helpful assistant. Each user message comes with a note in brackets saying what "
    "the user means and what the reply must say. Reply to the message in one to three short "
    "sentences, stating what the note says in your own words. Never repeat the note itself.")
TRANSCRIPT_INSTRUCTION = ("The assistant replies to each user in one or two sentences, saying "
                          "what it was told to tell them.")

# (message, meaning, guidance, chat reply with guidance, transcript reply with guidance, reply
# without guidance). A transcript reply starts with its note's facts: the form a base model copies.
_WORKED_TURNS = (
    ("My parcel still hasn't shown up.", "delivery status",
     "Parcels arrive within 2-4 working days. Offer to send the tracking link.",
     "Parcels usually arrive within 2-4 working days. Would you like me to send you the tracking "
     "link so you can see where it is?",
     "Parcels arrive within 2-4 working days. I can send you the tracking link if you like.",
     "I can help you find out where your parcel is. Could you tell me your order number?"),
    ("I can't get into my account anymore", "password reset",
     "Use 'Forgot password' on the sign-in page; the reset link is valid for 1 hour.",
     "Click 'Forgot password' on the sign-in page and we'll email you a reset link. The link is "
     "valid for 1 hour, so use it soon.",
     "Use 'Forgot password' on the sign-in page; the reset link is valid for 1 hour.",
     "I'm sorry you're locked out. I can help you reset your password: which email address is "
     "your account under?"),
)


def _note(chosen: str, guidance: str) -> str:
    note = f"{NOTE_MEANING}: {_one_line(chosen)}."
    if guidance.strip():
        note += f" {NOTE_GUIDANCE}: {_one_line(guidance)}"
    return f"[{note}]"


def _transcript_note(chosen: str, guidance: str) -> str:
    if guidance.strip():
        return f"{TRANSCRIPT_NOTE}: {_one_line(guidance)}"
    return f"{NOTE_MEANING}: {_one_line(chosen)}."


def guided_turn(query: str, chosen: str, guidance: str = "") -> str:
    """The user's message as a chat model sees it: the text, then the note from CM's decision."""
    return f"{query.strip()}\n{_note(chosen, guidance)}"


def guided_messages(query: str, chosen: str, guidance: str = "", *,
                    transcript: bool = False) -> list[dict]:
    """The message with its note: one user message, or (transcript) it, then a System note."""
    if transcript:
        return [{"role": "user", "content": query.strip()},
                {"role": "system", "content": _transcript_note(chosen, guidance)}]
    return [{"role": "user", "content": guided_turn(query, chosen, guidance)}]


def chat_preamble(guided: bool = True, *, transcript: bool = False) -> list[dict]:
    """The instruction and the worked turns (with guidance when `guided`, else notes that carry
    only the meaning and replies that invent no facts)."""
    msgs = [{"role": "system", "content": TRANSCRIPT_INSTRUCTION if transcript
             else CHAT_INSTRUCTION}]
    for query, meaning, guidance, chat_reply, transcript_reply, without in _WORKED_TURNS:
        reply = (transcript_reply if transcript else chat_reply) if guided else without
        msgs += guided_messages(query, meaning, guidance if guided else "", transcript=transcript)
        msgs.append({"role": "assistant", "content": reply})
    return msgs


def _approx_tokens(text: str) -> int:
    """A count that is not below a real tokenizer's for ordinary text (~4 characters a token)."""
    return len(text) // 3 + 1


def chat_messages(query: str, chosen: str, history: Sequence[dict] = (), guidance: str = "", *,
                  count_tokens: Callable[[str], int] | None = None,
                  budget: int | None = None, transcript: bool = False,
                  guidance_of: Mapping[str, str] | None = None) -> list[dict]:
    """Messages for the answer the model writes once CM has decided what the user means: the
    preamble, the conversation so far, then `query` with its note (one prompt for `cm chat` and
    the app's Chat view).

    With a `budget` (tokens the prompt may take), the oldest turns of `history` go first, a
    user turn together with its reply; then the worked turns; the message itself always stays.
    `transcript`: the layout for a base model read as a plain dialogue (see above); there an
    earlier reply that names its `meaning` (the response it was written for) gets its note again,
    from `guidance_of` (response -> guidance): without them the earlier turns show the model
    replies that follow no note, and from the third or fourth turn on it repeated an earlier
    reply instead of the new note.
    """
    count = count_tokens or _approx_tokens
    preamble = chat_preamble(guided=bool(guidance.strip()), transcript=transcript)
    current = guided_messages(query, chosen, guidance, transcript=transcript)
    turns = []
    for m in history:
        meaning = m.get("meaning")
        if transcript and m["role"] == "assistant" and meaning:
            turns.append({"role": "system", "content": _transcript_note(
                meaning, (guidance_of or {}).get(meaning, ""))})
        turns.append({"role": m["role"], "content": m["content"]})
    if budget is None:
        return preamble + turns + current
    per_message = 4   # role marker and separators
    cost = lambda msgs: sum(count(m["content"]) + per_message for m in msgs)  # noqa: E731
    fixed = cost(current)
    while turns and cost(preamble) + cost(turns) + fixed > budget:
        # drop the oldest exchange: up to and including the next assistant reply
        cut = next((i + 1 for i, m in enumerate(turns) if m["role"] == "assistant"), len(turns))
        turns = turns[cut:]
    if cost(preamble) + fixed > budget:
        preamble = preamble[:1] if cost(preamble[:1]) + fixed <= budget else []
    return preamble + turns + current
