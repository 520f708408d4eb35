"""The library on real files: the embedded Gemma, a GGUF added by path, GGUF metadata, the memory
estimate and its warning, names usable wherever `--model` is taken."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cm_desktop.backends.base import ModelFileError
from cm_desktop.models import CATALOGUE, ModelLibrary, ModelLibraryError, models_dir
from cm_desktop.models.gguf_info import (available_memory, fit_warning, memory_needed,
                                         read_info)


def test_the_models_folder_moves_with_cm_desktop_home(_isolated_home):
    assert models_dir() == _isolated_home / "models"
    assert models_dir().is_dir()


def test_the_embedded_model_is_listed_with_its_gguf_metadata(gemma_path):
    models = ModelLibrary().list()
    embedded = [m for m in models if m.source == "embedded"]
    assert len(embedded) == 1
    m = embedded[0]
    assert Path(m.path) == Path(gemma_path)
    assert m.size_bytes == gemma_path.stat().st_size
    assert m.architecture == "gemma3"
    assert m.quantization == "Q4_K_M"
    assert m.context_length == 32768
    info = read_info(gemma_path)
    assert m.chat_template == info.chat_template
    assert m.memory_bytes > m.size_bytes                 # weights + KV cache + logits
    assert m.problem is None


def test_a_file_added_by_path_stays_where_it_is_and_can_be_forgotten(tmp_path, gemma_path):
    copy = tmp_path / "elsewhere" / "my-model.gguf"
    copy.parent.mkdir()
    shutil.copyfile(gemma_path, copy)
    lib = ModelLibrary()
    m = lib.add(copy)
    assert m.source == "added" and m.name == "my-model" and Path(m.path) == copy.resolve()
    assert lib.resolve("my-model") == copy.resolve()       # a name works wherever --model does
    with pytest.raises(ModelLibraryError, match="already in the library"):
        lib.add(copy)
    lib.remove("my-model")
    assert copy.exists()                                   # forgotten, never deleted
    assert [m for m in lib.list() if m.source == "added"] == []


def test_the_embedded_model_cannot_be_removed():
    with pytest.raises(ModelLibraryError, match="embedded"):
        ModelLibrary().remove("embedded")


def test_a_file_that_is_not_gguf_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "weights.gguf"
    bad.write_bytes(b"PK\x03\x04 not a gguf at all")
    with pytest.raises(ModelFileError) as info:
        ModelLibrary().add(bad)
    assert "\n" not in str(info.value) and "not a GGUF" in str(info.value)


def test_a_model_that_will_not_fit_is_warned_about(gemma_path):
    needed = memory_needed(gemma_path.stat().st_size, read_info(gemma_path))
    warning = fit_warning(needed, needed // 2)
    assert warning is not None and "memory" in warning and "\n" not in warning
    assert fit_warning(needed, needed * 2) is None
    free = available_memory()
    assert free is None or free > 0


def test_the_catalogue_starts_with_llama_3_8b_instruct_q4_k_m():
    first = CATALOGUE[0]
    assert "Llama-3-8B-Instruct" in first.filename and "Q4_K_M" in first.filename
    assert all(e.filename.endswith(".gguf") and "/" in e.repo_id for e in CATALOGUE)
    assert 3 <= len(CATALOGUE) <= 5


def test_a_damaged_index_loses_nothing_but_what_it_remembered(tmp_path, gemma_path):
    lib = ModelLibrary()
    lib.index_path.write_text("{not json", encoding="utf-8")
    names = [m.name for m in lib.list()]
    assert any(m.source == "embedded" for m in lib.list()) and names
    assert lib.index_path.with_name("models.json.bad").exists()
