"""Fixtures of the model library tests: a local server speaking the hub's file API, serving the
embedded Gemma GGUF, with HF_ENDPOINT pointed at it."""

from __future__ import annotations

import hashlib

import pytest

from hub_server import FILENAME, GATED_REPO, REPO_ID, HubServer


@pytest.fixture(scope="session")
def gemma_sha256(gemma_path) -> str:
    h = hashlib.sha256()
    with open(gemma_path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture
def hub(gemma_path, monkeypatch, tmp_path):
    server = HubServer({(REPO_ID, FILENAME): gemma_path, (GATED_REPO, FILENAME): gemma_path})
    server.gated.add(GATED_REPO)
    with server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))   # never the user's cache
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield server
