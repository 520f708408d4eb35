"""Chat on the llama.cpp backend with the real embedded Gemma: the GGUF's own chat template, the
conversation prefix kept in the cache next to the scoring prompt, repetition control, cancel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cm_desktop.backends import load_backend
from cm_desktop.backends.chat_text import StopScanner, runaway_repetition, split_stop_prefix
from cm_desktop.cancel import CancelToken, Cancelled
from cm_desktop.cm import strategies as st

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RESPONSES = (ROOT / "resources" / "sample_profile" / "responses.txt").read_text().split("\n")
RESPONSES = [r for r in RESPONSES if r.strip()]
CANDIDATES = st.candidate_texts(RESPONSES)

# Gemma's turn format as a Jinja chat template, with the system message folded into the first
# user turn as Gemma's own template does: what an instruct GGUF carries in its metadata.
TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{% set first = messages[0]['content'] + '\n\n' %}{% set rest = messages[1:] %}"
    "{% else %}{% set first = '' %}{% set rest = messages %}{% endif %}"
    "{% for message in rest %}"
    "{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
    "<start_of_turn>{{ role }}\n{{ (first if loop.first else '') + message['content'] | trim }}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


@pytest.fixture(scope="module")
def templated_gguf(gemma_path, tmp_path_factory):
    """A copy of the embedded GGUF with tokenizer.chat_template added to its metadata."""
    gguf = pytest.importorskip("gguf")
    reader = gguf.GGUFReader(gemma_path)
    out = tmp_path_factory.mktemp("templated") / "gemma-3-270m-chat-template.gguf"
    arch = reader.get_field("general.architecture").contents()
    writer = gguf.GGUFWriter(out, arch=arch, endianess=reader.endianess)
    alignment = reader.get_field("general.alignment")
    if alignment is not None:
        writer.data_alignment = alignment.contents()
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in ("general.architecture",
                                                            "general.alignment"):
            continue  # the writer writes the header and these itself
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    writer.add_key_value("tokenizer.chat_template", TEMPLATE, gguf.GGUFValueType.STRING)
    for tensor in reader.tensors:
        writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype,
                               tensor.data.nbytes, tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data)
    writer.close()
    return out


def render(messages) -> str:
    """The template rendered the way Hugging Face renders chat templates."""
    import jinja2

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(TEMPLATE).render(messages=messages, bos_token="<bos>",
                                            add_generation_prompt=True)


def test_a_gguf_with_a_chat_template_chats_through_it(templated_gguf):
    backend = load_backend("llama_cpp", model_path=str(templated_gguf), n_ctx=1024)
    try:
        assert backend.chat_mode == "template"
        messages = [{"role": "system", "content": "Answer in one word."},
                    {"role": "user", "content": "What colour is the sky?"},
                    {"role": "assistant", "content": "Blue."},
                    {"role": "user", "content": "And grass?"}]
        expected = render(messages)
        assert "<start_of_turn>model\nBlue.<end_of_turn>" in expected
        assert backend.chat_prompt(messages)[0] == expected
        reply = "".join(backend.stream_chat(messages, max_tokens=6, temperature=0.0))
        # What the model was fed: the template's text with its turn markers as special tokens
        fed = backend._held[backend.chat_seq]
        want = backend._llm.tokenize(expected.encode(), add_bos=False, special=True)
        assert fed[:len(want)] == want
        turn = backend._llm.tokenize(b"<start_of_turn>", add_bos=False, special=True)
        assert len(turn) == 1 and fed.count(turn[0]) == 4  # three turns + the reply's own
        assert fed[0] == backend._llm.token_bos() and fed[1] != fed[0]  # one BOS, not two
        assert "<start_of_turn>" not in reply and "<end_of_turn>" not in reply
        assert backend.barred_openers(messages) == []   # a chat model's reply may open freely
    finally:
        backend.close()


def test_the_base_model_keeps_the_plain_transcript(llama_backend):
    assert llama_backend.chat_mode == "transcript"
    assert llama_backend.count_tokens("User: Hi") == len(
        llama_backend._llm.tokenize(b"User: Hi", add_bos=False, special=False))
    text, bos, stops = llama_backend.chat_prompt([{"role": "user", "content": "Hi"}])
    assert text == "User: Hi\nAssistant:" and bos and "\nUser:" in stops


# Messages whose replies, written from the sample's guidance at temperature 0, repeated a user turn
# word for word before a reply could not open with one: the first its own message, the second a
# worked example's "I can't get into my account anymore."
ECHOED = (("I'm not in the UK, can I get a card?", "country support"),
          ("Can you remove my account please?", "terminate account"))


def test_a_base_model_reply_does_not_open_with_a_user_turn(llama_backend):
    from cm_desktop.cm import chat
    from cm_desktop.ui.resource_files import sample_guidance

    guidance = {g.response: g.text for g in sample_guidance()}
    for message, meaning in ECHOED:
        messages = chat.reply_messages(llama_backend, message, meaning, guidance[meaning])
        users = [m["content"] for m in messages if m["role"] == "user"]
        replies = [m["content"] for m in messages if m["role"] == "assistant"]
        assert len(users) == 3 and len(replies) == 2   # two worked turns, then the message

        def first(text):
            return llama_backend._token_ids(" " + text.strip(), prompt=False)[0]
        firsts = {first(u) for u in users}
        # the worked replies state their note's facts: they open with none of those tokens
        assert not firsts & {first(r) for r in replies}
        assert set(llama_backend.barred_openers(messages)) == firsts
        prompt = llama_backend.chat_prompt_tokens(messages)
        reply = "".join(llama_backend.stream_chat(messages, max_tokens=24, temperature=0.0))
        fed = llama_backend._held[llama_backend.chat_seq]   # the prompt, then the reply's tokens
        assert fed[:len(prompt)] == prompt and len(fed) > len(prompt) and reply.strip()
        # the reply's first token is none of the user turns' first tokens: it repeats none
        assert fed[len(prompt)] not in firsts, (message, reply)
        assert not any(u.strip().startswith(reply.strip()[:12]) for u in users), (message, reply)


def test_a_token_a_reply_opens_with_is_never_barred(llama_backend):
    # without guidance the worked replies open with "I" ("I'm sorry ...", "I can help ..."), as
    # does a worked user turn ("I can't get into my account anymore"): replies may open so
    messages = chat_messages_without_guidance("My card was declined in a shop")
    i = llama_backend._token_ids(" I", prompt=False)[0]
    assert any(m["role"] == "user" and m["content"].startswith("I ") for m in messages)
    assert any(m["role"] == "assistant" and m["content"].startswith("I") for m in messages)
    barred = llama_backend.barred_openers(messages)
    assert barred and i not in barred
    assert llama_backend._token_ids(" My", prompt=False)[0] in barred   # "My card was declined"


def chat_messages_without_guidance(message):
    from cm_desktop.cm import chat

    return chat.reply_messages(None, message, "declined card payment", "")


def conversation_turn(backend, history, question, max_tokens=12):
    history = history + [{"role": "user", "content": question}]
    reply = "".join(backend.stream_chat(history, max_tokens=max_tokens, temperature=0.0))
    return history + [{"role": "assistant", "content": reply}], reply


def score_sample(backend, query):
    return backend.score(st.vanilla_prompt(RESPONSES, query), CANDIDATES)


def test_chat_prefix_and_scoring_prompt_do_not_corrupt_each_other(llama_backend):
    b = llama_backend
    query = "where is my new card"
    first = score_sample(b, query)
    history, _ = conversation_turn(b, [], "My card has not arrived yet.")
    evaluated = b.stats["prompt_tokens_evaluated"]
    again = score_sample(b, query)
    assert b.stats["prompt_tokens_evaluated"] == evaluated  # the scoring prompt was kept
    # The chat's cells beside the candidate branches change the kernels' summation order only:
    # measured up to 0.27 nats on multi-token candidates (0 on single-token ones), within the
    # tolerance every scoring test uses against the uncached reference.
    np.testing.assert_allclose(again.logprob, first.logprob, atol=0.6)

    n_before = len(b.chat_prompt_tokens(history))
    score_sample(b, "can I top up by cash")     # scoring between turns, as the chat view does
    reused, evaluated = b.stats["chat_tokens_reused"], b.stats["chat_tokens_evaluated"]
    history2, reply2 = conversation_turn(b, history, "How long does that take?")
    want = b.chat_prompt_tokens(history2[:-1])
    assert b.stats["chat_tokens_reused"] - reused >= n_before - 8   # the earlier turns kept
    assert b.stats["chat_tokens_evaluated"] - evaluated <= len(want) - n_before + 8
    assert b._held[b.chat_seq][:len(want)] == want    # the model saw this conversation
    assert reply2.strip()


def test_a_conversation_does_not_leak_into_scoring(llama_backend):
    # A chat full of one response's words sits in the cache while the same prompt is scored:
    # that response must not gain (a branch that saw the chat's cells would).
    b = llama_backend
    query = "where is my new card"
    target = RESPONSES.index("exchange rate")
    b._reset_cache()
    alone = score_sample(b, query).logprob
    conversation_turn(b, [], "exchange rate " * 120, max_tokens=4)
    b._forget(0, 0)                                   # the prompt is evaluated next to the chat
    beside = score_sample(b, query).logprob
    assert len(b._held[b.chat_seq]) > 240
    assert beside[target] - alone[target] < 0.6
    np.testing.assert_allclose(beside, alone, atol=0.6)


def test_a_full_cache_evicts_the_other_sequence_and_both_still_work(gemma_path):
    b = load_backend("llama_cpp", model_path=str(gemma_path), n_ctx=1024)
    try:
        long_question = "Tell me about my account. " * 60     # ~360 tokens of chat
        history, _ = conversation_turn(b, [], long_question, max_tokens=8)
        history, _ = conversation_turn(b, history, long_question, max_tokens=8)
        labels = RESPONSES[:40]
        prompt = st.vanilla_prompt(labels, "where is my card")  # ~450 tokens + branches
        s = b.score(prompt, st.candidate_texts(labels))
        assert b.stats["evictions"] >= 1
        b._reset_cache()
        ref = b.score(prompt, st.candidate_texts(labels))   # on an empty cache
        np.testing.assert_allclose(s.logprob, ref.logprob, atol=0.6)  # as test_llama_cpp
        _, reply = conversation_turn(b, history, "Thanks.", max_tokens=8)
        assert reply.strip()
    finally:
        b.close()


def test_runaway_repetition_ends_the_reply(gemma_path):
    # Without the repeat penalty the base model continues a run of zeros until the limit.
    b = load_backend("llama_cpp", model_path=str(gemma_path), n_ctx=512, repeat_penalty=1.0)
    try:
        out = b.complete("The number is 1000000000000000000000000000", max_tokens=120)
        assert b.last_stop_reason == "runaway"
        assert len(b._token_ids(out, prompt=False)) < 60
    finally:
        b.close()


def test_runaway_rule_and_stop_scanner():
    assert runaway_repetition([5] * 24) == 1
    assert runaway_repetition([5] * 23) == 0
    assert runaway_repetition([1, 2, 3] * 8) == 3
    assert runaway_repetition(list(range(10)) * 3) == 10
    assert runaway_repetition(list(range(10)) * 2) == 0
    assert runaway_repetition([7, 8] + [9] * 10 + [7, 8]) == 0
    s = StopScanner(["\nUser:"])
    assert s.feed("Fine.\nUs") == "Fine." and not s.stopped
    assert s.feed("e") == "" and s.feed("r: hi") == "" and s.stopped
    s = StopScanner(["\nUser:"])
    assert s.feed("Fine.\nUs") == "Fine." and s.feed("ually") == "\nUsually"
    assert split_stop_prefix("Fine.\nYes") == ("Fine.\nYes", "")
    # a reply's leading blank space is not shown, the blank space after its start is
    s = StopScanner(["\nUser:"])
    assert s.feed(" ") == "" and s.feed("\n Hi") == "Hi" and s.feed(" there") == " there"


class CancelAfter(CancelToken):
    """Cancels itself at its n-th check: where in the work a cancel is seen is then known."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    @property
    def cancelled(self) -> bool:
        self.left -= 1
        if self.left <= 0:
            self.cancel()
        return super().cancelled


def test_a_long_prompt_is_cancelled_between_compute_steps(llama_backend):
    b = llama_backend
    prompt = st.vanilla_prompt(RESPONSES, "I was charged twice " + json.dumps(list(range(200))))
    n = len(b._token_ids(prompt, prompt=True))
    assert n > 4 * b.n_ubatch
    b._reset_cache()
    before = b.stats["prompt_tokens_evaluated"]
    with pytest.raises(Cancelled):
        b.score(prompt, CANDIDATES, cancel=CancelAfter(3))
    done = b.stats["prompt_tokens_evaluated"] - before
    assert 0 < done <= 2 * b.n_ubatch
    # what was decoded before the cancel is kept and correct
    reused = b.stats["prompt_tokens_reused"]
    s = b.score(prompt, CANDIDATES)
    assert b.stats["prompt_tokens_reused"] - reused >= done
    b._reset_cache()
    np.testing.assert_allclose(s.logprob, b.score(prompt, CANDIDATES).logprob, atol=0.6)
