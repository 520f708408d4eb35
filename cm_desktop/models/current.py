"""Which model the settings name, and its fingerprint without loading it (for `cm bank show`,
the Bank view's counts by model, the rebase button's label)."""

from __future__ import annotations

from pathlib import Path

from cm_desktop.backends.base import ModelFileError, file_fingerprint


def settings_model_file(settings) -> Path | None:
    """The GGUF/model file the settings' backend loads, or None (a server, a model folder)."""
    from cm_desktop.backends import default_model_path

    if settings.backend_kind == "llama_cpp":
        try:
            return Path(settings.model_path) if settings.model_path else default_model_path()
        except ModelFileError:
            return None
    if settings.backend_kind == "hf":
        p = Path(settings.hf_model or settings.model_path) if (settings.hf_model or
                                                               settings.model_path) else None
        return p if p is not None and p.is_file() else None
    return None


def settings_fingerprint(settings) -> str | None:
    """The fingerprint the settings' model (a cm_desktop.settings.Settings) will record with
    ratings, computed from the file (its sha256 cached by the library), or None when only the
    loaded model can tell (a server)."""
    from cm_desktop.models.library import ModelLibrary

    path = settings_model_file(settings)
    if path is None or not path.is_file():
        return None
    return file_fingerprint(settings.backend_kind, path, sha256=ModelLibrary().sha256(path))
