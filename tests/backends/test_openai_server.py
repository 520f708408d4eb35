"""The openai backend against llama-cpp-python's own server serving the embedded Gemma GGUF,
and the secrets test: a stored key is sent to the server but is in no file the app writes."""

from __future__ import annotations

import base64
import os

import numpy as np
import pytest

from cm_desktop.backends import load_backend

pytestmark = pytest.mark.slow

# Short prompt, few candidates: the server computes echo log-probs by sorting the whole
# 262k vocabulary in Python for every prompt token, so each request costs ~0.1 s per token.
PROMPT = "Weather or music? Message: will it rain\nAnswer:"
CANDS = [" weather", " music", " rain tomorrow"]


@pytest.fixture()
def openai_backend(llama_server):
    b = load_backend("openai", base_url=llama_server, timeout=120,
                     max_retries=0, concurrency=2)
    yield b
    b.close()


def test_scores_agree_with_llama_cpp(openai_backend, llama_backend):
    remote = openai_backend.score(PROMPT, CANDS)
    assert remote.method == "logprobs" and openai_backend.score_path == "logprobs"
    local = llama_backend.score_uncached(PROMPT, CANDS)  # same one-pass evaluation as the server
    assert remote.n_tokens.tolist() == local.n_tokens.tolist()
    # Measured: |remote - local| was 0.0543 nats on " rain tomorrow" (1e-7 on the others) in 4
    # of 4 scorings at concurrency=1 against one server, the same every time, so request
    # grouping is not its source. The server reuses the cached prompt and decodes the candidate's
    # tokens in a small step; llama.cpp's sums depend on the step size (locally, n_ubatch 8
    # instead of 16 or more moved " weather" by 0.11 nats). 0.1 is about twice the measured gap.
    np.testing.assert_allclose(remote.logprob, local.logprob, atol=0.1)
    cached = llama_backend.score(PROMPT, CANDS)
    assert remote.best == cached.best
    np.testing.assert_allclose(remote.logprob, cached.logprob, atol=0.6)


def test_complete_and_stream(openai_backend):
    assert openai_backend.complete("The capital of France is", max_tokens=8).strip()
    text = "".join(openai_backend.stream_chat([{"role": "user", "content": "Say hello."}],
                                              max_tokens=16, temperature=0.0))
    assert text.strip()
    fp = openai_backend.fingerprint
    assert fp.startswith("openai:gemma-3-270m:http://127.0.0.1:")


def test_enum_path_gives_a_one_hot_choice(llama_server):
    b = load_backend("openai", base_url=llama_server, timeout=120,
                     max_retries=0, score_path="enum")
    s = b.score(PROMPT, CANDS)
    assert s.method == "enum"
    assert sorted(s.probabilities().tolist()) == [0.0, 0.0, 1.0]
    b.close()


def test_key_is_sent_but_never_stored(llama_server, bank, tmp_path, _isolated_home):
    from bank_store.formats import export_native, export_paper

    from cm_desktop import credentials, paths
    from cm_desktop.settings import Settings

    key = "sk-test-ZX81-secret-key-0123456789"
    credentials.set_api_key(key, llama_server)
    b = load_backend("openai", base_url=llama_server, timeout=120,
                     max_retries=0)
    assert b._client.api_key == key  # the client sends it as the bearer token
    assert b.complete("Hello", max_tokens=2) is not None  # a real request carrying the key
    fp = b.fingerprint
    assert key not in fp

    s = Settings()
    s.backend_kind, s.openai_base_url = "openai", llama_server
    s.save()
    bank.create_profile("p", ["weather", "music"], fingerprint=fp)
    for i in range(5):
        bank.add_rating("p", f"message {i}", "weather", "music", fingerprint=fp)
    native, paper = tmp_path / "export.json", tmp_path / "paper.json"
    export_native(bank, "p", native)
    export_paper(bank, "p", paper)
    bank.close()

    needles = [key.encode(), base64.b64encode(key.encode()), key[8:24].encode()]
    scanned = [native, paper]
    scanned += [p for p in tmp_path.glob("bank.sqlite3*")]
    for root in {paths.config_dir(), paths.data_dir()}:
        for dirpath, _, files in os.walk(root):
            scanned += [os.path.join(dirpath, f) for f in files]
    assert any(str(p).endswith("settings.json") for p in scanned)
    for path in scanned:
        data = open(path, "rb").read()
        for needle in needles:
            assert needle not in data, f"the key is in {path}"
    b.close()
