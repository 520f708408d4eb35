"""Fixtures shared by every test package.

The real embedded Gemma model is loaded once per session (it is what the app ships); every
test gets its own data dir so nothing touches the user's real bank or settings. `llama_server`
is a real `python -m llama_cpp.server` on 127.0.0.1 serving that model (backend and UI tests).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server(gemma_path, tmp_path_factory):
    """Base URL (…/v1) of a llama-cpp-python server started once for the test run, stopped at its end."""
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] not installed")
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gemma_path),
           "--model_alias", "gemma-3-270m", "--chat_format", "gemma", "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048", "--n_threads", "2"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/models", timeout=2) as r:
                    if json.load(r).get("data"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer in 120 s:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
