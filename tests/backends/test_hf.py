"""The hf backend (transformers, CPU float32) on the same GGUF as llama_cpp: scoring, generation,
cancel, and chat as a transcript for a base model."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cm_desktop.cancel import CancelToken, Cancelled

pytestmark = pytest.mark.slow

LABELS = ["alarm", "weather", "play_music", "cooking_recipe", "transport_taxi", "calendar_set"]
CANDS = [" " + lab for lab in LABELS]
MESSAGES = ["wake me up at seven tomorrow", "will it rain in london", "call me a taxi to the airport"]


def prompt(text: str) -> str:
    return ("Classify the user's message into one of these labels:\n" + "\n".join(LABELS)
            + "\n\nMessage: " + text + "\nLabel:")


def test_agrees_with_llama_cpp(hf_backend, llama_backend):
    assert re.fullmatch(r"hf:gemma-3-270m-q4_k_m\.gguf:\d+:[0-9a-f]{12}", hf_backend.fingerprint)
    for m in MESSAGES:
        h = hf_backend.score(prompt(m), CANDS)
        q = llama_backend.score(prompt(m), CANDS)
        assert h.n_tokens.tolist() == q.n_tokens.tolist()  # same tokenizer, same convention
        assert h.best == q.best, (m, h.logprob, q.logprob)
        # float32 dequantised weights vs llama.cpp's quantised arithmetic: close, not equal
        assert np.corrcoef(np.argsort(np.argsort(h.logprob)),
                           np.argsort(np.argsort(q.logprob)))[0, 1] > 0.8
        assert np.abs(h.logprob - q.logprob).max() < 1.5


def test_cache_repeat_equals_whole_sequences(hf_backend):
    p = prompt(MESSAGES[0])
    assert (hf_backend.score(p, CANDS).n_tokens > 1).any()
    with_cache = hf_backend.score(p, CANDS).logprob
    assert hf_backend.cache_repeat, "the prompt-cache path must be the one in use"
    hf_backend.cache_repeat = False
    try:
        whole = hf_backend.score(p, CANDS).logprob
    finally:
        hf_backend.cache_repeat = True
    np.testing.assert_allclose(with_cache, whole, atol=1e-3)


def test_generation_and_cancel(hf_backend):
    assert hf_backend.complete("The capital of France is", max_tokens=6).strip()
    text = "".join(hf_backend.stream_chat([{"role": "user", "content": "Say hello."}],
                                          max_tokens=8, temperature=0.0))
    assert text.strip()
    token = CancelToken()
    got = []
    with pytest.raises(Cancelled):
        for piece in hf_backend.stream_chat([{"role": "user", "content": "Tell a story."}],
                                            max_tokens=64, temperature=0.0, cancel=token):
            got.append(piece)
            token.cancel()
    assert len(got) == 1


def test_a_base_model_chats_in_a_transcript_and_does_not_echo(hf_backend):
    # the GGUF carries no chat template: a plain transcript, as llama_cpp gives it, whose reply
    # may not open as a user turn does; with a turn markup it does not know the base model
    # answered with the message and its note
    from cm_desktop.cm import chat
    from cm_desktop.ui.resource_files import sample_guidance

    assert hf_backend.chat_mode == "transcript"
    guidance = {g.response: g.text for g in sample_guidance()}
    for message, meaning in (("When is my new card going to arrive?", "card arrival"),
                             ("Can you remove my account please?", "terminate account")):
        messages = chat.reply_messages(hf_backend, message, meaning, guidance[meaning])
        text, bos, stops = hf_backend.chat_prompt(messages)
        assert text.endswith(f"User: {message}\nSystem: What to tell the user: "
                             f"{guidance[meaning]}\nAssistant:")
        assert bos and "\nUser:" in stops
        users = [m["content"] for m in messages if m["role"] == "user"]
        firsts = {hf_backend._token_ids(" " + u.strip(), prompt=False)[0] for u in users}
        reply = "".join(hf_backend.stream_chat(messages, max_tokens=32, temperature=0.0))
        assert reply.strip() and reply == reply.lstrip()
        assert hf_backend._token_ids(" " + reply, prompt=False)[0] not in firsts, reply
        assert not any(u.strip().startswith(reply[:12]) for u in users), reply
        assert chat.leak_position(reply) < 0, reply     # no note, no new turn in it
