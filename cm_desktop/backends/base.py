"""The backend interface every model access layer implements, and its errors.

A backend does two things for the rest of the app: score a fixed set of candidate responses for a
prompt (so the CM engine gets a full distribution p(y'|x) and never parses free text), and stream
a chat reply that can be cancelled. Nothing here imports a model library; the concrete backends
import theirs lazily so the app starts without torch or llama_cpp.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import typing
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import ClassVar, Iterator, Sequence

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


def bounded(default, low, high, *, none_ok: bool = False):
    """A dataclass field whose value must lie in [low, high] (None allowed when `none_ok`)."""
    return field(default=default, metadata={"range": (low, high), "none_ok": none_ok})


@dataclass
class Options:
    """A backend's own settings: each backend subclasses this as its nested `Options` class.

    Fields are type-checked and range-checked on construction, so a bad value from a settings
    file or the command line is one clear BackendError, before any model is touched. `kind`
    names the backend the options are for.
    """

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, _checked_option(self.kind, f, hints[f.name], value))


def _checked_option(kind: str, f: dataclasses.Field, hint, value):
    where = f"{kind} option {f.name}"
    allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, UnionType) \
        else (hint,)
    if value is None:
        if type(None) in allowed or f.metadata.get("none_ok"):
            return None
        raise BackendError(f"{where} needs a value")
    if str in allowed and isinstance(value, os.PathLike):
        value = os.fspath(value)        # a file path given as a Path
    if isinstance(value, bool):
        if bool not in allowed:
            raise BackendError(f"{where} must be a number, not {value!r}")
    elif int in allowed and isinstance(value, int):
        pass
    elif float in allowed and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
    elif str in allowed and isinstance(value, str):
        if len(value) > 4096:
            raise BackendError(f"{where} is longer than 4096 characters")
    elif not any(isinstance(value, t) for t in allowed if isinstance(t, type)):
        names = " or ".join(getattr(t, "__name__", str(t)) for t in allowed)
        raise BackendError(f"{where} must be {names}, not {type(value).__name__} {value!r}")
    if "range" in f.metadata:
        low, high = f.metadata["range"]
        if not low <= value <= high:
            raise BackendError(f"{where} must be between {low} and {high}, not {value!r}")
    return value


@dataclass
class ScoringTokens:
    """A prompt and its candidates as token ids, as every scoring backend counts them."""

    candidates: list[str]
    prompt: list[int]
    per_candidate: list[list[int]]


# The candidate tokens of a response set depend on the prompt only at the boundary (the engine's
# prompts differ in the query, never in how they end), so they are cached per (prompt ending,
# response set). Characters of the prompt's end in the key: far more than any token's reach.
_BOUNDARY_CHARS = 64
_TOKEN_CACHE_SETS = 16


class Backend:
    """Base class: a fingerprint, candidate scoring, completion, streaming chat, close.

    Each backend is a small class with its own typed `Options` (a dataclass, see `Options`),
    built from them by `cm_desktop.backends.load_backend`. Implementations are not required to
    be thread-safe for concurrent use; the caller (the UI's inference worker) owns a backend.
    They do serialise calls with a lock so misuse is slow, not corrupting.
    """

    kind: str = "base"
    Options = Options
    # Tokens a prompt plus its longest candidate may take; None: the backend does not count.
    context_tokens: int | None = None

    def __init__(self, options: "Options | None" = None) -> None:
        self.options = options if options is not None else type(self).Options()
        self._lock = threading.RLock()
        self._fingerprint = ""
        self._candidate_token_cache: OrderedDict[tuple, list[list[int]]] = OrderedDict()
        self.stats = {"boundary_fallbacks": 0, "candidate_token_cache_hits": 0}

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    # -- tokenization for scoring (backends that count tokens themselves) -------------------
    def _token_ids(self, text: str, *, prompt: bool) -> list[int]:
        """`text` as token ids: as a prompt (BOS, special tokens parsed) or as a bare piece."""
        raise NotImplementedError

    def scoring_tokens(self, prompt: str, candidates: Sequence[str], *, cached: bool = True
                       ) -> ScoringTokens:
        """Check and tokenize a scoring request.

        Convention: a candidate is the tokens that follow the prompt's tokens when prompt +
        candidate is tokenized as one text. Candidates should start with a separator (" " or
        "\\n") and the prompt should not end with one, so no token spans the boundary; where one
        does (the prompt's tokens are not a prefix of the joint tokens), the candidate is
        tokenized on its own, which keeps the shared prompt identical for every candidate.
        `cached=False` recomputes the candidates' tokens (the reference paths use it).
        """
        cands = validate_candidates(candidates)
        if not isinstance(prompt, str) or not prompt:
            raise BackendError("the prompt must be a non-empty string")
        prompt_tokens = self._token_ids(prompt, prompt=True)
        key = (prompt[-_BOUNDARY_CHARS:], tuple(cands))
        per_candidate = self._candidate_token_cache.get(key) if cached else None
        if per_candidate is None:
            per_candidate = [self._candidate_token_ids(prompt, prompt_tokens, c) for c in cands]
            self._candidate_token_cache[key] = per_candidate
            while len(self._candidate_token_cache) > _TOKEN_CACHE_SETS:
                self._candidate_token_cache.popitem(last=False)
        else:
            self._candidate_token_cache.move_to_end(key)
            self.stats["candidate_token_cache_hits"] += 1
        if self.context_tokens is not None:
            longest = max(len(t) for t in per_candidate)
            if len(prompt_tokens) + longest > self.context_tokens:
                raise BackendError(
                    f"prompt ({len(prompt_tokens)} tokens) plus the longest candidate ({longest}) "
                    f"exceed the context of {self.context_tokens} tokens")
        return ScoringTokens(cands, prompt_tokens, per_candidate)

    def _candidate_token_ids(self, prompt: str, prompt_tokens: list[int], candidate: str
                             ) -> list[int]:
        joint = self._token_ids(prompt + candidate, prompt=True)
        n0 = len(prompt_tokens)
        if len(joint) > n0 and joint[:n0] == prompt_tokens:
            return joint[n0:]
        self.stats["boundary_fallbacks"] += 1
        alone = self._token_ids(candidate, prompt=False)
        if not alone:
            raise BackendError(f"candidate {candidate!r} has no tokens")
        return alone

    # -- the work ---------------------------------------------------------------------------
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
