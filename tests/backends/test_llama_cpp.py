"""The default backend on the real embedded Gemma model."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading

import numpy as np
import pytest

from cm_desktop.backends import BackendError, CandidateScores
from cm_desktop.cancel import CancelToken, Cancelled

pytestmark = pytest.mark.slow

LABELS = ["alarm", "weather", "music", "cooking", "transport", "calendar_event", "takeaway_order"]
HEAD = "Classify the user's message into one of these labels:\n" + "\n".join(LABELS) + "\n\n"
CANDS = [" " + lab for lab in LABELS]


def prompt(text: str) -> str:
    return HEAD + "Message: " + text + "\nLabel:"


def test_fingerprint_and_chat_format(llama_backend, gemma_path):
    fp = llama_backend.fingerprint
    assert re.fullmatch(r"llama_cpp:gemma-3-270m-q4_k_m\.gguf:\d+:[0-9a-f]{12}", fp)
    assert fp.split(":")[2] == str(gemma_path.stat().st_size)
    # the GGUF has no template and its name says base model: served as a plain transcript
    assert llama_backend.chat_mode == llama_backend.chat_format == "transcript"


def test_scores_match_the_naive_reference(llama_backend):
    # Every candidate must get the log-prob a fresh, one-candidate-at-a-time evaluation gives.
    # Batch composition changes llama.cpp's quantised arithmetic a little, hence a tolerance.
    p = prompt("wake me up at seven tomorrow")
    ours = llama_backend.score(p, CANDS)
    ref = llama_backend.score_uncached(p, CANDS)
    assert isinstance(ours, CandidateScores)
    assert ours.n_tokens.tolist() == ref.n_tokens.tolist()
    assert (ours.n_tokens > 1).any(), "some candidates must span several tokens"
    assert np.all(ours.logprob < 0)
    np.testing.assert_allclose(ours.logprob, ref.logprob, atol=0.6)
    assert ours.best == ref.best
    assert abs(ours.probabilities().sum() - 1) < 1e-9


def test_prefix_is_reused_across_queries(llama_backend):
    llama_backend.score(prompt("play some jazz"), CANDS)
    before = dict(llama_backend.stats)
    llama_backend.score(prompt("what is the weather like in paris"), CANDS)
    evaluated = llama_backend.stats["prompt_tokens_evaluated"] - before["prompt_tokens_evaluated"]
    reused = llama_backend.stats["prompt_tokens_reused"] - before["prompt_tokens_reused"]
    n_head = len(llama_backend._token_ids(HEAD, prompt=True))
    assert reused >= n_head - 2
    assert evaluated < 20  # only the new message tail, not the ~60-token head again
    # the same prompt twice evaluates nothing
    before = llama_backend.stats["prompt_tokens_evaluated"]
    a = llama_backend.score(prompt("what is the weather like in paris"), CANDS)
    assert llama_backend.stats["prompt_tokens_evaluated"] == before
    b = llama_backend.score(prompt("what is the weather like in paris"), CANDS)
    assert a.logprob.tolist() == b.logprob.tolist()


def test_sequential_fallback_agrees_with_branches(llama_backend):
    p = prompt("order me a pizza")
    branches = llama_backend.score(p, CANDS)
    llama_backend.batched = False
    try:
        seq = llama_backend.score(p, CANDS)
    finally:
        llama_backend.batched = True
    assert seq.extra["path"] == "sequential"
    np.testing.assert_allclose(seq.logprob, branches.logprob, atol=0.6)
    assert seq.best == branches.best


def test_many_candidates_use_several_rounds(llama_backend):
    # More candidates than sequences in one round, and long ones: still exact per candidate.
    cands = [f" tag {i}" for i in range(260)]
    p = "Pick a tag:"
    s = llama_backend.score(p, cands)
    assert len(s.logprob) == 260 and np.all(np.isfinite(s.logprob))
    tokens = llama_backend.scoring_tokens(p, cands)
    assert len(llama_backend._rounds(len(tokens.prompt), tokens.per_candidate)) >= 2
    ref = llama_backend.score_uncached(p, [cands[0], cands[259]])
    np.testing.assert_allclose(s.logprob[[0, 259]], ref.logprob, atol=0.6)


def test_bad_inputs_are_clear_errors(llama_backend):
    with pytest.raises(BackendError, match="empty"):
        llama_backend.score(prompt("x"), [])
    with pytest.raises(BackendError, match="list of strings"):
        llama_backend.score(prompt("x"), " alarm")
    with pytest.raises(BackendError, match="non-empty"):
        llama_backend.score(prompt("x"), [" alarm", ""])
    with pytest.raises(BackendError, match="exceed the context"):
        llama_backend.score("word " * 5000, [" a"])
    with pytest.raises(BackendError, match="chat message"):
        llama_backend.stream_chat([{"role": "robot", "content": "hi"}])
    # and it still works afterwards
    assert llama_backend.score(prompt("set an alarm"), CANDS).best in CANDS


def test_cancel_before_and_during(llama_backend):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        llama_backend.score(prompt("x"), CANDS, cancel=token)
    token = CancelToken()
    pieces = []
    with pytest.raises(Cancelled):
        for piece in llama_backend.stream_chat([{"role": "user", "content": "Tell me a story."}],
                                               max_tokens=64, temperature=0.0, cancel=token):
            pieces.append(piece)
            token.cancel()
    assert len(pieces) == 1
    # scoring after a cancelled stream is still right
    p = prompt("wake me up at seven tomorrow")
    np.testing.assert_allclose(llama_backend.score(p, CANDS).logprob,
                               llama_backend.score_uncached(p, CANDS).logprob, atol=0.6)


def test_complete_and_stream(llama_backend):
    text = llama_backend.complete("The capital of France is", max_tokens=8)
    assert "Paris" in text or "France" in text
    assert "\n" not in llama_backend.complete("One, two, three,", max_tokens=20, stop=["\n"])
    out = "".join(llama_backend.stream_chat([{"role": "user", "content": "Say hello."}],
                                            max_tokens=16, temperature=0.0))
    assert out.strip()


def test_two_threads_serialise_not_corrupt(llama_backend):
    # Prompts whose best label leads by > 2 nats: a score moves by up to 0.16 nats with the
    # cache's state (measured against score_uncached), so the argmax holds whatever ran before.
    ps = [prompt("wake me up at seven tomorrow"), prompt("is it going to be sunny")]
    serial = [llama_backend.score(p, CANDS).logprob for p in ps]
    results = {}

    def work(i):
        results[i] = llama_backend.score(ps[i % 2], CANDS).logprob

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, lp in results.items():
        np.testing.assert_allclose(lp, serial[i % 2], atol=0.6)
        assert int(np.argmax(lp)) == int(np.argmax(serial[i % 2]))


def test_shared_prefixes_are_decoded_once(llama_backend):
    cands = [" card has arrived", " card has not arrived", " card payment fee", " cash withdrawal"]
    p = "Which banking topic? Message: where is my new card\nTopic:"
    before = llama_backend.stats["candidate_rows_decoded"]
    s = llama_backend.score(p, cands)
    rows = llama_backend.stats["candidate_rows_decoded"] - before
    assert rows < int((s.n_tokens - 1).sum())  # " card" / " card has" decoded once, not 3 times
    ref = llama_backend.score_uncached(p, cands)
    np.testing.assert_allclose(s.logprob, ref.logprob, atol=0.6)
    assert s.best == ref.best


def test_base_model_chats_as_a_transcript_and_never_shows_a_cut_stop(llama_backend):
    from cm_desktop.backends.chat_text import render_transcript
    from cm_desktop.backends.chat_text import split_stop_prefix as _split_stop_prefix

    # The embedded Gemma is a base model with no template: served as a plain dialogue.
    assert llama_backend.chat_mode == "transcript"
    assert render_transcript([{"role": "system", "content": "Be brief."},
                              {"role": "user", "content": " Hi "}]) == \
        "System: Be brief.\nUser: Hi\nAssistant:"
    assert _split_stop_prefix("Fine.\nUs") == ("Fine.", "\nUs")
    assert _split_stop_prefix("Fine.\nYes") == ("Fine.\nYes", "")
    from cm_desktop.cm.strategies import chat_messages

    # The last prompt (the app's own answer prompt) makes the model write a further
    # "\nAssistant:" turn of its own when only the user's turns stop it.
    cases = [([{"role": "user", "content": "When is my new card going to arrive?"}], n)
             for n in (4, 9, 16, 40)]
    cases.append((chat_messages("Can I top up by cash?", "top up by cash or cheque"), 200))
    for messages, max_tokens in cases:
        out = "".join(llama_backend.stream_chat(messages, max_tokens=max_tokens, temperature=0.0))
        assert out.strip(), max_tokens
        assert out == out.lstrip(), "a reply starts with its first word"
        assert "User:" not in out and "Assistant:" not in out
        assert not any(out.endswith(p) for p in ("\nU", "\nUs", "\nUser", "\nA", "\nAssist"))


def test_explicit_chat_format_uses_the_template(gemma_path):
    from cm_desktop.backends import load_backend

    backend = load_backend("llama_cpp", model_path=str(gemma_path),
                           chat_format="gemma", n_ctx=512)
    try:
        assert backend.chat_mode == "format" and backend.chat_format == "gemma"
        text, bos, _ = backend.chat_prompt([{"role": "user", "content": "Hi"}])
        assert text == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n" and bos
    finally:
        backend.close()



# Run in a child process: a llama.cpp GGML_ASSERT aborts the whole process, and here it must fail
# this test rather than end pytest. The smallest n_batch the Options allow also forces n_ubatch
# down to it, and llama.cpp's sums depend on the compute-step size (measured on this prompt:
# n_ubatch 8 and 12 gave -4.8038 for " weather", 9 gave -4.7569, 16 and 128 gave -4.9155, whatever
# n_batch), so the reference is the default n_batch at the same n_ubatch.
_SMALL_BATCH_SCRIPT = """
import dataclasses, json, sys
from cm_desktop.backends import load_backend
from cm_desktop.backends.llama_cpp import LlamaCppBackend
prompt, cands = sys.argv[2], json.loads(sys.argv[3])
field = {f.name: f for f in dataclasses.fields(LlamaCppBackend.Options)}["n_batch"]
smallest = field.metadata["range"][0]
out = {"smallest": smallest}
for name, kw in [("small", dict(n_batch=smallest)), ("default", {})]:
    b = load_backend("llama_cpp", model_path=sys.argv[1], n_threads=1, n_ubatch=smallest, **kw)
    out[name] = {"uncached": b.score_uncached(prompt, cands).logprob.tolist(),
                 "cached": b.score(prompt, cands).logprob.tolist(), "n_batch": b.n_batch}
    b.close()
print(json.dumps(out))
"""


def test_smallest_n_batch_scores_without_aborting(gemma_path):
    prompt_text = "Weather or music? Message: will it rain\nAnswer:"
    cands = [" weather", " music", " rain tomorrow"]
    proc = subprocess.run([sys.executable, "-c", _SMALL_BATCH_SCRIPT, str(gemma_path),
                           prompt_text, json.dumps(cands)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["small"]["n_batch"] == out["smallest"] < out["default"]["n_batch"]
    # same tokens, same compute steps: the batch size changes only how decode calls are cut
    assert out["small"]["uncached"] == out["default"]["uncached"]
    np.testing.assert_allclose(out["small"]["cached"], out["default"]["cached"], rtol=0, atol=1e-6)
