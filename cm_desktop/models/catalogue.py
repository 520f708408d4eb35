"""A short list of GGUFs that work well with the app. Nothing here is downloaded unless asked.

Sizes are the files' sizes on the Hub (rounded); memory is gguf_info.memory_needed for the app's
default context (4096 tokens) computed from each model's architecture, rounded up.
The first entry is the model the product is built for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CatalogueEntry:
    title: str
    repo_id: str
    filename: str
    size_bytes: int          # about
    memory_bytes: int        # about, with the app's default context
    licence: str
    gated: bool              # the repo asks the user to accept a licence first

    def to_dict(self) -> dict:
        return asdict(self)


GB = 1000 ** 3

CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry("Meta Llama 3 8B Instruct, Q4_K_M", "bartowski/Meta-Llama-3-8B-Instruct-GGUF",
                   "Meta-Llama-3-8B-Instruct-Q4_K_M.gguf", int(4.92 * GB), int(5.8 * GB),
                   "Llama 3 Community License", False),
    CatalogueEntry("Llama 3.2 3B Instruct, Q4_K_M", "bartowski/Llama-3.2-3B-Instruct-GGUF",
                   "Llama-3.2-3B-Instruct-Q4_K_M.gguf", int(2.02 * GB), int(2.9 * GB),
                   "Llama 3.2 Community License", False),
    CatalogueEntry("Qwen2.5 1.5B Instruct, Q4_K_M", "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
                   "qwen2.5-1.5b-instruct-q4_k_m.gguf", int(1.12 * GB), int(1.6 * GB),
                   "Apache-2.0", False),
    CatalogueEntry("Gemma 3 1B Instruct, Q4_K_M", "bartowski/google_gemma-3-1b-it-GGUF",
                   "google_gemma-3-1b-it-Q4_K_M.gguf", int(0.81 * GB), int(1.3 * GB),
                   "Gemma Terms of Use", False),
)
