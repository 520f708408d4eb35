"""Fixtures shared by every test package.

The real embedded Gemma model is loaded once per session (it is what the app ships); every
test gets its own data dir so nothing touches the user's real bank or settings.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "cm-home"
    monkeypatch.setenv("CM_DESKTOP_HOME", str(home))
    monkeypatch.delenv("CM_BANK", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    yield home


@pytest.fixture
def bank(tmp_path):
    from bank_store import DiscrepancyBank

    b = DiscrepancyBank(tmp_path / "bank.sqlite3")
    yield b
    b.close()


@pytest.fixture(scope="session")
def gemma_path():
    from cm_desktop.backends import default_model_path

    return default_model_path()


@pytest.fixture(scope="session")
def llama_backend(gemma_path):
    """The default backend on the embedded model, shared by the whole session (loading is slow)."""
    from cm_desktop.backends import load_backend

    backend = load_backend("llama_cpp", model_path=str(gemma_path))
    yield backend
    backend.close()
