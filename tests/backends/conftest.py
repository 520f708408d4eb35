"""Session fixtures of the backend tests: the hf backend (slow to load). The llama.cpp server
fixture (`llama_server`) is in tests/conftest.py: the UI tests use it too."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def hf_backend(gemma_path):
    """The hf backend on CPU (float32) with the same GGUF; loading takes ~50 s, so once."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from cm_desktop.backends import load_backend

    backend = load_backend("hf", model_path=str(gemma_path), device="cpu",
                           n_threads=2)
    yield backend
    backend.close()
