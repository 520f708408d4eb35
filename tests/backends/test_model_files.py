"""A missing, truncated or non-GGUF model file is a clear ModelFileError at load, never a crash."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cm_desktop.backends import BackendError, ModelFileError, backend_options, load_backend
from cm_desktop.backends.base import check_gguf_file


@pytest.mark.parametrize("kind", ["llama_cpp", "hf"])
def test_missing_file(tmp_path, kind):
    with pytest.raises(ModelFileError, match="not found"):
        load_backend(kind, model_path=str(tmp_path / "nope.gguf"))


@pytest.mark.parametrize("kind", ["llama_cpp", "hf"])
def test_not_gguf(tmp_path, kind):
    f = tmp_path / "model.gguf"
    f.write_bytes(b"<html>404 not found</html>" * 100)
    with pytest.raises(ModelFileError, match="not a GGUF"):
        load_backend(kind, model_path=str(f))


def test_truncated_real_model(tmp_path, gemma_path):
    # The real header with most of the tensor data missing (an interrupted download).
    with open(gemma_path, "rb") as src:
        data = src.read(8 << 20)
    for cut in (16, 4096, 1 << 20, 8 << 20):
        f = tmp_path / f"cut{cut}.gguf"
        f.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="truncated|damaged"):
            load_backend("llama_cpp", model_path=str(f))


def test_whole_model_passes_the_check(gemma_path):
    assert check_gguf_file(gemma_path) == gemma_path


def test_bad_file_does_not_kill_the_process(tmp_path):
    # llama.cpp may abort() on garbage; our check must stop it first. Run in a child so an
    # abort would show as a signal exit rather than take the test runner down.
    f = tmp_path / "garbage.gguf"
    f.write_bytes(b"GGUF" + b"\xff" * 5000)
    code = ("import sys\nfrom cm_desktop.backends import *\n"
            f"try:\n    load_backend(model_path={str(f)!r})\n"
            "except ModelFileError as e:\n    print('CLEAR:', e); sys.exit(0)\nsys.exit(3)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "CLEAR:" in r.stdout and "garbage.gguf" in r.stdout


def test_unknown_kind():
    with pytest.raises(BackendError, match="unknown backend kind"):
        backend_options("tensorflow")
    with pytest.raises(BackendError, match="unknown backend kind"):
        load_backend("tensorflow")


def test_importing_backends_does_not_import_model_libraries():
    code = ("import sys, cm_desktop.backends\n"
            "bad = [m for m in ('torch', 'transformers', 'llama_cpp', 'openai') if m in sys.modules]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
