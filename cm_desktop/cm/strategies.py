"""Prompts for the paper's strategies, and the fixed candidate convention.

Layout, always: the fixed part (instruction + the full response list) first, then the examples,
then the query and the answer cue. The fixed part is identical for every query of a profile, so
the llama_cpp backend keeps its KV cache across queries; never put per-query text before it.

Candidates are scored as continuations " " + response + "\n": the newline ends the answer, so
"card arrival" and "card arrival delayed" get different likelihoods. The model's answer is
always chosen by scoring the response set - free text is never parsed.
"""

from __future__ import annotations

from typing import Sequence

STRATEGIES = ("vanilla", "cot", "fot", "consistent", "feedback")
FOT_EXAMPLES = 3        # FoT shows the k nearest rated examples; CoT the single nearest


def candidate_text(response: str) -> str:
    return " " + response + "\n"


def candidate_texts(responses: Sequence[str]) -> list[str]:
    return [candidate_text(r) for r in responses]


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


def chat_messages(query: str, chosen: str, history: Sequence[dict] = ()) -> list[dict]:
    """Messages for the answer the model writes once CM has decided what the user means
    (one prompt for `cm chat` and the app's Chat view)."""
    instruction = (f"The user's message is about: {chosen}. "
                   "Reply helpfully and briefly to that request.\n\n")
    return list(history) + [{"role": "user", "content": instruction + query}]
