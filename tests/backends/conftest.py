"""Session fixtures of the backend tests: the hf backend (slow to load) and a real llama.cpp
server (`python -m llama_cpp.server`) serving the embedded Gemma GGUF on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture(scope="session")
def llama_server(gemma_path, tmp_path_factory):
    """Base URL (…/v1) of a llama-cpp-python server started for this session, stopped at the end."""
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
