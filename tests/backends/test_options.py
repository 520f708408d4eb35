"""Each backend's own typed options, and the registry that builds a backend from them."""

from __future__ import annotations

import dataclasses

import pytest

from cm_desktop.backends import (
    BACKENDS,
    KINDS,
    BackendError,
    HFBackend,
    LlamaCppBackend,
    OpenAIBackend,
    backend_options,
    load_backend,
)
from cm_desktop.settings import Settings


def test_registry_maps_each_kind_to_its_class_and_options():
    assert set(KINDS) == {"llama_cpp", "hf", "openai"}
    for kind, cls in BACKENDS.items():
        assert cls.kind == kind and cls.Options.kind == kind
        assert isinstance(backend_options(kind), cls.Options)
    # the options are each backend's own: no field of another backend leaks in
    llama = {f.name for f in dataclasses.fields(LlamaCppBackend.Options)}
    openai = {f.name for f in dataclasses.fields(OpenAIBackend.Options)}
    assert "n_ubatch" in llama and "base_url" not in llama
    assert "base_url" in openai and "n_ctx" not in openai
    assert "device" in {f.name for f in dataclasses.fields(HFBackend.Options)}


@pytest.mark.parametrize("kind, values, match", [
    ("llama_cpp", {"base_url": "http://127.0.0.1:1/v1"}, "no option base_url"),
    ("openai", {"n_ctx": 4096}, "no option n_ctx"),
    ("llama_cpp", {"n_ctx": "4096"}, "n_ctx must be int"),
    ("llama_cpp", {"n_ctx": 8}, "between 64 and"),
    ("llama_cpp", {"n_threads": True}, "n_threads must be a number"),
    ("llama_cpp", {"seed": 1.5}, "seed must be int"),
    ("openai", {"timeout": -1}, "timeout must be between"),
    ("openai", {"concurrency": 0}, "concurrency must be between"),
    ("hf", {"model_path": 3}, "model_path must be str"),
])
def test_bad_option_values_are_one_clear_error(kind, values, match):
    with pytest.raises(BackendError, match=match):
        backend_options(kind, **values)
    with pytest.raises(BackendError, match=match):
        load_backend(kind, **values)


def test_options_are_converted_where_lossless():
    opts = backend_options("openai", timeout=5)
    assert opts.timeout == 5.0 and isinstance(opts.timeout, float)


def test_options_object_or_values_not_both():
    with pytest.raises(BackendError, match="not both"):
        load_backend(backend_options("hf"), device="cpu")
    with pytest.raises(BackendError, match="not backend options"):
        load_backend(42)


def test_settings_build_the_chosen_backends_options():
    opts = Settings(backend_kind="llama_cpp", model_path="/m.gguf", n_threads=3).backend_config()
    assert isinstance(opts, LlamaCppBackend.Options)
    assert (opts.model_path, opts.n_threads) == ("/m.gguf", 3)
    opts = Settings(backend_kind="hf", hf_model="/models/x", n_threads=0).backend_config()
    assert isinstance(opts, HFBackend.Options) and opts.model_path == "/models/x"
    assert opts.n_threads is None
    opts = Settings(backend_kind="openai", openai_base_url="http://127.0.0.1:9/v1").backend_config()
    assert isinstance(opts, OpenAIBackend.Options) and opts.model is None
