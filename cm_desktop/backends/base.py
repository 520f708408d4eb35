"""The backend interface every model access layer implements, and its errors.

A backend does two things for the rest of the app: score a fixed set of candidate responses for a
prompt (so the CM engine gets a full distribution p(y'|x) and never parses free text), and stream
a chat reply that can be cancelled. Nothing here imports a model library; the concrete backends
import theirs lazily so the app starts without torch or llama_cpp.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from cm_desktop.cancel import CancelToken, check


class BackendError(Exception):
    """A model backend failed; the message says what to do about it."""


class ModelFileError(BackendError):
    """The model file is missing, truncated or not a model file this backend reads."""


class EndpointError(BackendError):
    """An OpenAI-compatible endpoint failed; the message names the URL and the cause."""

    def __init__(self, message: str, *, url: str = "", cause: str = "", status: int | None = None):
        super().__init__(message)
        self.url = url
        self.cause = cause
        self.status = status


@dataclass
class CandidateScores:
    """Log-likelihood of each candidate given the prompt: .logprob[i] = Σ log p(tokens of i)."""

    candidates: list[str]
    logprob: np.ndarray                      # float64, one per candidate
    n_tokens: np.ndarray                     # int, tokens each candidate was scored over
    method: str = "exact"                    # "exact" or a one-hot fallback ("enum", "match")
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.logprob = np.asarray(self.logprob, dtype=np.float64)
        self.n_tokens = np.asarray(self.n_tokens, dtype=np.int64)
        if len(self.candidates) != len(self.logprob) or len(self.logprob) != len(self.n_tokens):
            raise ValueError("candidates, logprob and n_tokens must have the same length")

    @property
    def best(self) -> str:
        return self.candidates[int(np.argmax(self.logprob))]

    def probabilities(self, length_normalised: bool = False) -> np.ndarray:
        """Softmax over the candidates (optionally of the per-token mean log-prob)."""
        lp = self.logprob / np.maximum(self.n_tokens, 1) if length_normalised else self.logprob
        finite = np.isfinite(lp)
        if not finite.any():
            return np.full(len(lp), 1.0 / max(len(lp), 1))
        z = np.where(finite, lp - lp[finite].max(), -np.inf)
        p = np.exp(z)
        return p / p.sum()


class Backend:
    """Base class: a fingerprint, candidate scoring, completion, streaming chat, close.

    Implementations are not required to be thread-safe for concurrent use; the caller (the UI's
    inference worker) owns a backend. They do serialise calls with a lock so misuse is slow, not
    corrupting.
    """

    kind: str = "base"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._fingerprint = ""

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def score(self, prompt: str, candidates: Sequence[str], cancel: CancelToken | None = None
              ) -> CandidateScores:
        raise NotImplementedError

    def complete(self, prompt: str, *, max_tokens: int = 64, stop: Sequence[str] | None = None,
                 temperature: float = 0.0) -> str:
        raise NotImplementedError

    def stream_chat(self, messages: Sequence[dict], *, max_tokens: int = 256,
                    temperature: float = 0.7, cancel: CancelToken | None = None) -> Iterator[str]:
        # Bad messages and an already-cancelled token fail here, at the call, not at the first
        # next() of the stream.
        msgs = validate_messages(messages)
        check(cancel)
        return self._stream(msgs, int(max_tokens), float(temperature), cancel)

    def _stream(self, msgs: list[dict], max_tokens: int, temperature: float,
                cancel: CancelToken | None) -> Iterator[str]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def validate_candidates(candidates: Sequence[str]) -> list[str]:
    if isinstance(candidates, str):
        raise BackendError("candidates must be a list of strings, not one string")
    out = list(candidates)
    if not out:
        raise BackendError("no candidates to score: the response set is empty")
    for c in out:
        if not isinstance(c, str) or not c:
            raise BackendError(f"every candidate must be a non-empty string, got {c!r}")
    return out


GGUF_MAGIC = b"GGUF"
_MIN_GGUF_BYTES = 1024  # header + metadata of any real model is larger than this

_hash_cache: dict[tuple[str, int, int], str] = {}


def check_gguf_file(path: str | os.PathLike) -> Path:
    """Raise ModelFileError unless `path` looks like a whole GGUF file.

    llama.cpp may abort the whole process on a garbage file, so this runs before it sees one:
    the file must exist, start with the 4-byte magic and be at least as large as its tensor data
    claims (a cheap truncation check: the last tensor's offset + size, when gguf can read it).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelFileError(f"model file not found: {p}")
    if not p.is_file():
        raise ModelFileError(f"model path is not a file: {p}")
    size = p.stat().st_size
    with open(p, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelFileError(
            f"not a GGUF model file (first bytes {magic!r}, expected b'GGUF'): {p}")
    if size < _MIN_GGUF_BYTES:
        raise ModelFileError(f"model file is truncated ({size} bytes): {p}")
    expected = _gguf_expected_size(p)
    if expected is not None and size < expected:
        raise ModelFileError(
            f"model file is truncated: {size} bytes on disk, its header describes {expected}: {p}")
    return p


_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
           12: "d"}


def _gguf_expected_size(p: Path) -> int | None:
    """End of the last tensor's data according to the GGUF header (a fast walk, no model load).

    Raises ModelFileError when the header itself runs past the end of the file.
    """
    import mmap
    import struct

    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        pos = 4

        def read(fmt):
            nonlocal pos
            vals = struct.unpack_from("<" + fmt, m, pos)
            pos += struct.calcsize("<" + fmt)
            return vals[0] if len(vals) == 1 else vals

        def skip_string():
            nonlocal pos
            n = read("Q")
            if pos + n > len(m):
                raise struct.error("string past the end")
            pos += n

        def read_string():
            nonlocal pos
            n = read("Q")
            if pos + n > len(m):
                raise struct.error("string past the end")
            s = bytes(m[pos:pos + n])
            pos += n
            return s

        def skip_value(t):
            nonlocal pos
            if t in _SCALAR:
                pos += struct.calcsize(_SCALAR[t])
            elif t == 8:
                skip_string()
            elif t == 9:
                inner, n = read("I"), read("Q")
                if inner in _SCALAR:
                    pos += n * struct.calcsize(_SCALAR[inner])
                else:
                    for _ in range(n):
                        skip_value(inner)
            else:
                raise struct.error(f"unknown metadata type {t}")
            if pos > len(m):
                raise struct.error("metadata past the end")

        try:
            version, n_tensors, n_kv = read("I"), read("Q"), read("Q")
            if version not in (2, 3) or n_tensors > 1_000_000 or n_kv > 1_000_000:
                raise struct.error(f"implausible header (version {version})")
            alignment = 32
            for _ in range(n_kv):
                key = read_string()
                t = read("I")
                if key == b"general.alignment" and t == 4:
                    alignment = read("I")
                else:
                    skip_value(t)
            infos = []
            for _ in range(n_tensors):
                skip_string()
                n_dims = read("I")
                dims = [read("Q") for _ in range(n_dims)]
                infos.append((dims, read("I"), read("Q")))
        except struct.error as exc:
            raise ModelFileError(f"model file is damaged or truncated (header: {exc}): {p}") from None
        data_start = (pos + alignment - 1) // alignment * alignment
    try:
        from gguf.constants import GGML_QUANT_SIZES
    except ImportError:
        GGML_QUANT_SIZES = {}
    end = data_start
    for dims, ttype, offset in infos:
        n_el = 1
        for d in dims:
            n_el *= d
        block, size = GGML_QUANT_SIZES.get(ttype, (1, 0))
        end = max(end, data_start + offset + n_el // block * size)
    return end


def file_fingerprint(kind: str, path: str | os.PathLike, sha256: str | None = None) -> str:
    """`kind:name:size:sha256[:12]` — what the bank stores with each rating. Hashes once per run
    (`sha256`: the file's digest when the caller already has it, e.g. the model library's)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if sha256:
        _hash_cache[key] = sha256[:12]
    digest = _hash_cache.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        digest = h.hexdigest()[:12]
        _hash_cache[key] = digest
    return f"{kind}:{p.name}:{st.st_size}:{digest}"


def validate_messages(messages) -> list[dict]:
    """Chat messages as plain {'role', 'content'} dicts, or a BackendError saying what is wrong."""
    if isinstance(messages, (str, bytes)) or not messages:
        raise BackendError("messages must be a non-empty list of {'role', 'content'} dicts")
    out = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str):
            raise BackendError(f"bad chat message {m!r}: need role system/user/assistant and "
                               "string content")
        out.append({"role": m["role"], "content": m["content"]})
    return out
