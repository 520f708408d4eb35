"""The default backend: llama-cpp-python on a GGUF file (the embedded Gemma 3 270M by default).

Scoring is where the time goes, so it works on the llama.cpp context directly:

* The prompt lives in sequence 0 of the KV cache. Across calls only the suffix after the longest
  common token prefix with the previous prompt is evaluated (the engine puts the fixed instruction
  and response list first, so consecutive queries share most of their tokens).
* The log-softmax of the prompt's last position is kept; it scores every candidate's first token.
* All candidates are then decoded together, each in its own sequence that branches from sequence 0
  (`llama_memory_seq_cp` tags the prompt's cells, nothing is copied in a unified cache). A prefix
  shared by several candidates (" card_" in " card_arrival", " card_linking") is decoded once,
  tagged with all their sequence ids. Logits are requested only at positions that predict a
  candidate token, and a candidate's last token is never decoded (nothing after it is needed).
  The branch sequences are removed afterwards.
* Without multi-sequence support the same sums are computed candidate by candidate on sequence 0.

Candidates are tokenized by the base class (Backend.scoring_tokens), cached per response set.

Threads: the model object belongs to one thread, the caller's inference worker. A lock serialises
calls anyway, so misuse is slow rather than corrupting; a stream holds the lock until it ends or
is closed.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from cm_desktop.backends.base import (
    Backend,
    BackendError,
    CandidateScores,
    ModelFileError,
    bounded,
    check_gguf_file,
    file_fingerprint,
)
from cm_desktop.backends.base import Options as _Options
from cm_desktop.cancel import CancelToken, Cancelled, check

# Chat formats by architecture, for GGUF files that carry no tokenizer.chat_template.
_CHAT_FORMAT_BY_ARCH = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "llama": "llama-3",
                        "qwen2": "qwen", "mistral": "mistral-instruct"}
# Memory, not speed, sets these: llama.cpp keeps an output buffer of (rows) x vocab floats, 1 MiB
# a row for Gemma's 262k vocabulary, sized by n_seq_max at start and grown to the most rows any
# decode asked logits for. 64 + 64 keep it at 64 MiB; more rows per call saved no time on CPU
# (the work is per row either way), only decode calls.
_MAX_SEQUENCES = 64   # candidates decoded together per round = this - 1
_MAX_OUTPUT_ROWS = 64  # logit rows per candidate round


_TRANSCRIPT_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
# A base model keeps writing the dialogue: any new turn, its own included, ends the reply.
TRANSCRIPT_STOPS = ("\nUser:", "\nSystem:", "\nAssistant:")


def _is_base_model(metadata: dict) -> bool:
    """True unless the GGUF's name says it was tuned to chat ("it", "instruct", "chat")."""
    name = " ".join(str(metadata.get(k, "")) for k in
                    ("general.finetune", "general.name", "general.basename")).lower()
    words = set(name.replace("-", " ").replace("_", " ").split())
    return not (words & {"it", "instruct", "chat"} or "instruct" in name)


def _split_stop_prefix(text: str) -> tuple[str, str]:
    """(text to show, tail to hold back): the tail is the longest end of `text` that begins a
    transcript stop string, so a reply cut off by max_tokens never ends in a half "\nUser"."""
    for n in range(min(len(text), max(map(len, TRANSCRIPT_STOPS))), 0, -1):
        if any(stop.startswith(text[-n:]) for stop in TRANSCRIPT_STOPS):
            return text[:-n], text[-n:]
    return text, ""


def render_transcript(messages: Sequence[dict]) -> str:
    """Chat messages as a plain dialogue a base model continues with the assistant's reply."""
    turns = [f"{_TRANSCRIPT_ROLES[m['role']]}: {m['content'].strip()}" for m in messages]
    return "\n".join(turns) + "\nAssistant:"


def row_logsumexp(logits: np.ndarray, block: int = 8) -> np.ndarray:
    """log sum exp of each row of `logits` (rows x vocab, float32), in float64.

    Rows are done a few at a time: over a 262k vocabulary each float32 temporary is 1 MiB a row,
    and doing all 64 rows at once doubled the process's peak memory for no speed.
    """
    out = np.empty(len(logits), dtype=np.float64)
    for r in range(0, len(logits), block):
        chunk = logits[r:r + block]
        m = chunk.max(axis=1, keepdims=True)
        # exp in float32 is the bulk of the cost; the sum is accumulated in float64
        out[r:r + block] = m[:, 0].astype(np.float64) + np.log(
            np.exp(chunk - m).sum(axis=1, dtype=np.float64))
    return out


def log_softmax_at(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """log p(target_r) for each row r of `logits` (rows x vocab, float32), in float64."""
    picked = logits[np.arange(len(targets)), targets].astype(np.float64)
    return picked - row_logsumexp(logits)


_params_lock = threading.Lock()


@contextlib.contextmanager
def _context_params_for(llama_cpp, n_seq: int):
    """Make Llama() build its context with one unified KV cache shared by `n_seq` sequences.

    Llama() creates its context with n_seq_max = 1 and offers no parameter for it; the
    branch-per-candidate scoring needs more. Building a second context afterwards would hold two
    sets of buffers at once (the worst-case logits buffer alone is n_ubatch x 262,144 floats), so
    the default parameters are adjusted for the duration of the constructor instead. A unified
    cache keeps n_ctx cells for all sequences together, and a prompt's cells are shared by tagging.
    """
    lib = llama_cpp.llama_cpp
    original = lib.llama_context_default_params

    def adjusted():
        params = original()
        if n_seq > 1:
            params.n_seq_max = n_seq
            params.kv_unified = True
        return params

    with _params_lock:
        lib.llama_context_default_params = adjusted
        try:
            yield
        finally:
            lib.llama_context_default_params = original


class LlamaCppBackend(Backend):
    kind = "llama_cpp"

    @dataclass
    class Options(_Options):
        kind = "llama_cpp"
        model_path: str | None = None      # a GGUF file; None: the embedded Gemma
        chat_format: str | None = None     # None: from the GGUF metadata / architecture
        n_ctx: int = bounded(4096, 64, 1 << 20)
        n_threads: int | None = bounded(None, 1, 256, none_ok=True)  # None: os.cpu_count()
        n_batch: int = bounded(512, 8, 1 << 16)
        # rows per compute step; llama.cpp's worst-case logits buffer is n_ubatch x vocab floats
        # (128 MiB for Gemma's 262k vocabulary at 128, 512 MiB at 512)
        n_ubatch: int = bounded(128, 8, 1 << 16)
        seed: int = bounded(0, 0, 2**32 - 1)

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        config = self.options
        self._lock = threading.Lock()
        from cm_desktop.backends import default_model_path

        path = check_gguf_file(config.model_path or default_model_path())
        try:
            import llama_cpp
        except ImportError as exc:
            raise BackendError("llama-cpp-python is not installed (pip install llama-cpp-python)"
                               ) from exc
        self._lib = llama_cpp
        self.model_path = path
        self.n_threads = int(config.n_threads or os.cpu_count() or 1)
        n_seq = min(_MAX_SEQUENCES, int(getattr(llama_cpp, "llama_max_parallel_sequences",
                                                lambda: 1)()))
        try:
            with _context_params_for(llama_cpp, n_seq):
                self._llm = llama_cpp.Llama(
                    model_path=str(path), n_ctx=int(config.n_ctx), n_batch=int(config.n_batch),
                    n_ubatch=min(int(config.n_ubatch), int(config.n_batch)), n_threads=self.n_threads,
                    n_threads_batch=self.n_threads, seed=int(config.seed), logits_all=False,
                    verbose=False, chat_format=config.chat_format)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelFileError(f"llama.cpp could not load {path}: {exc}") from None
        llm = self._llm
        self.metadata = dict(llm.metadata)
        self.arch = self.metadata.get("general.architecture", "")
        no_template = "tokenizer.chat_template" not in self.metadata
        if config.chat_format is None and no_template:
            llm.chat_format = _CHAT_FORMAT_BY_ARCH.get(self.arch, llm.chat_format)
        self.chat_format = llm.chat_format
        # A base (not instruction-tuned) model that ships no template answers turn markup by
        # echoing the prompt; as a plain transcript it continues with a reply. An explicit
        # chat_format always wins.
        self.chat_mode = ("transcript" if config.chat_format is None and no_template
                          and _is_base_model(self.metadata) else "chat")
        self.n_ctx = self.context_tokens = llm.n_ctx()
        self.n_vocab = llm.n_vocab()
        self.n_batch = int(config.n_batch)
        cp = llm.context_params
        self.n_sequences = int(cp.n_seq_max) if cp.kv_unified else 1
        self.batched = self.n_sequences > 1
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, self.n_sequences)
        self._last_lsm: np.ndarray | None = None   # log-softmax at the last token of seq 0 ...
        self._last_lsm_n = -1                      # ... valid while seq 0 holds this many tokens
        self.stats.update(prompt_tokens_evaluated=0, prompt_tokens_reused=0, decode_calls=0,
                          candidate_rows_decoded=0)
        self._fingerprint = file_fingerprint(self.kind, path)

    # -- set-up -----------------------------------------------------------------------------
    @property
    def _ctx(self):
        return self._llm._ctx.ctx

    @property
    def _mem(self):
        return self._lib.llama_get_memory(self._ctx)

    # -- tokenization -----------------------------------------------------------------------
    def _token_ids(self, text: str, *, prompt: bool) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=prompt, special=prompt)

    # -- the low-level decode ---------------------------------------------------------------
    def _decode(self, tokens: Sequence[int], positions: Sequence[int], seqs: Sequence[int],
                want_logits: Sequence[bool]) -> None:
        b = self._batch
        n = len(tokens)
        b.n_tokens = n
        for i in range(n):
            b.token[i] = tokens[i]
            b.pos[i] = positions[i]
            ids = seqs[i]
            if isinstance(ids, int):
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = ids
            else:  # a token shared by several candidate sequences (a common prefix)
                b.n_seq_id[i] = len(ids)
                row = b.seq_id[i]
                for k, sid in enumerate(ids):
                    row[k] = sid
            b.logits[i] = bool(want_logits[i])
        rc = self._lib.llama_decode(self._ctx, b)
        self.stats["decode_calls"] += 1
        if rc != 0:
            raise BackendError(f"llama_decode failed (code {rc}): the context ({self.n_ctx} "
                               f"tokens) may be full; shorten the prompt or raise n_ctx")

    def _output_logits(self, n_rows: int) -> np.ndarray:
        ptr = self._lib.llama_get_logits(self._ctx)
        return np.ctypeslib.as_array(ptr, shape=(n_rows, self.n_vocab))

    def _ensure_prompt(self, tokens: list[int], cancel: CancelToken | None) -> np.ndarray:
        """Make sequence 0 hold exactly `tokens`; return log-softmax at its last position."""
        llm, lib = self._llm, self._lib
        n = len(tokens)
        held = llm.n_tokens
        common = 0
        cached = llm.input_ids[:held]
        limit = min(held, n)
        if limit:
            diff = np.nonzero(cached[:limit] != np.asarray(tokens[:limit], dtype=cached.dtype))[0]
            common = int(diff[0]) if len(diff) else limit
        if common == n == held and self._last_lsm_n == n and self._last_lsm is not None:
            self.stats["prompt_tokens_reused"] += n
            return self._last_lsm
        keep = min(common, n - 1)  # always re-decode at least the last token to get its logits
        if not lib.llama_memory_seq_rm(self._mem, -1, keep, -1):
            lib.llama_memory_clear(self._mem, True)
            keep = 0
        llm.n_tokens = keep
        llm._requires_eval = True
        self._last_lsm_n = -1
        self.stats["prompt_tokens_reused"] += keep
        pos = keep
        while pos < n:
            check(cancel)
            chunk = tokens[pos:pos + self.n_batch]
            last = [False] * len(chunk)
            if pos + len(chunk) == n:
                last[-1] = True
            self._decode(chunk, range(pos, pos + len(chunk)), [0] * len(chunk), last)
            llm.input_ids[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
            llm.n_tokens = pos
            self.stats["prompt_tokens_evaluated"] += len(chunk)
        row = self._output_logits(1)[0].astype(np.float64)
        m = row.max()
        self._last_lsm = row - (m + np.log(np.exp(row - m).sum()))
        self._last_lsm_n = n
        return self._last_lsm

    # -- scoring ----------------------------------------------------------------------------
    def score(self, prompt: str, candidates: Sequence[str], cancel: CancelToken | None = None
              ) -> CandidateScores:
        with self._lock:
            check(cancel)
            tokens = self.scoring_tokens(prompt, candidates)
            cands, prompt_tokens, cand_tokens = tokens.candidates, tokens.prompt, tokens.per_candidate
            lsm = self._ensure_prompt(prompt_tokens, cancel)
            try:
                if self.batched:
                    logprob = self._score_branches(len(prompt_tokens), cand_tokens, lsm, cancel)
                else:
                    logprob = self._score_sequential(len(prompt_tokens), cand_tokens, lsm, cancel)
            finally:
                # the context's logits now belong to candidate rows, not to seq 0's last token
                self._llm._requires_eval = True
            return CandidateScores(cands, logprob, [len(t) for t in cand_tokens],
                                   extra={"prompt_tokens": len(prompt_tokens),
                                          "path": "branches" if self.batched else "sequential"})

    def _rounds(self, n0: int, cand_tokens: list[list[int]]) -> list[list[int]]:
        """Group candidates (indices) so each round fits the batch, the sequences and the cache.

        Candidates are taken in token order so those sharing a prefix land in the same round;
        a round's cost is its number of distinct prefixes (trie nodes), not its token count.
        """
        order = sorted((i for i, t in enumerate(cand_tokens) if len(t) > 1),
                       key=lambda i: cand_tokens[i])
        rounds, cur, nodes = [], [], set()
        for i in order:
            toks = cand_tokens[i]
            new = {tuple(toks[:j + 1]) for j in range(len(toks) - 1)} - nodes
            full = (len(nodes) + len(new) > _MAX_OUTPUT_ROWS or len(cur) >= self.n_sequences - 1
                    or n0 + len(nodes) + len(new) > self.n_ctx)
            if cur and full:
                rounds.append(cur)
                cur, nodes = [], set()
                new = {tuple(toks[:j + 1]) for j in range(len(toks) - 1)}
            if len(new) > self.n_batch:
                raise BackendError(f"a candidate is longer than n_batch={self.n_batch} tokens")
            cur.append(i)
            nodes |= new
        if cur:
            rounds.append(cur)
        return rounds

    def _score_branches(self, n0, cand_tokens, lsm, cancel) -> np.ndarray:
        """Decode every candidate prefix once (a trie over the candidates' tokens).

        A token shared by several candidates' prefixes is decoded once, tagged with all their
        sequence ids; its logits row scores the next token of each of them.
        """
        lib, mem = self._lib, self._mem
        logprob = np.array([lsm[t[0]] for t in cand_tokens], dtype=np.float64)
        for members in self._rounds(n0, cand_tokens):
            check(cancel)
            node_index: dict[tuple, int] = {}
            toks, pos, seqs = [], [], []
            picks_row, picks_target, picks_owner = [], [], []
            for k, i in enumerate(members):
                seq = k + 1
                lib.llama_memory_seq_cp(mem, 0, seq, -1, -1)
                ct = cand_tokens[i]
                for j in range(len(ct) - 1):
                    key = tuple(ct[:j + 1])
                    row = node_index.get(key)
                    if row is None:
                        row = node_index[key] = len(toks)
                        toks.append(ct[j])
                        pos.append(n0 + j)
                        seqs.append([])
                    seqs[row].append(seq)
                    picks_row.append(row)
                    picks_target.append(ct[j + 1])
                    picks_owner.append(i)
            try:
                self._decode(toks, pos, seqs, [True] * len(toks))
                self.stats["candidate_rows_decoded"] += len(toks)
                logits = self._output_logits(len(toks))
                lse = row_logsumexp(logits)
                rows = np.asarray(picks_row)
                vals = logits[rows, np.asarray(picks_target)].astype(np.float64) - lse[rows]
                np.add.at(logprob, np.asarray(picks_owner), vals)
            finally:
                for k in range(len(members)):
                    lib.llama_memory_seq_rm(mem, k + 1, -1, -1)
        return logprob

    def _score_sequential(self, n0, cand_tokens, lsm, cancel) -> np.ndarray:
        lib = self._lib
        logprob = np.empty(len(cand_tokens), dtype=np.float64)
        for i, ct in enumerate(cand_tokens):
            check(cancel)
            logprob[i] = lsm[ct[0]]
            if len(ct) > 1:
                inputs = ct[:-1]
                try:
                    self._decode(inputs, range(n0, n0 + len(inputs)), [0] * len(inputs),
                                 [True] * len(inputs))
                    logprob[i] += log_softmax_at(self._output_logits(len(inputs)),
                                                 np.asarray(ct[1:])).sum()
                finally:
                    lib.llama_memory_seq_rm(self._mem, 0, n0, -1)
        return logprob

    def score_uncached(self, prompt: str, candidates: Sequence[str],
                       cancel: CancelToken | None = None) -> CandidateScores:
        """The naive reference: per candidate, clear the cache and evaluate prompt + candidate.

        Same tokens, same sums as score(); used by tests and benchmarks/scoring_bench.py as the
        baseline. Leaves the cache empty.
        """
        with self._lock:
            tokens = self.scoring_tokens(prompt, candidates, cached=False)
            cands, prompt_tokens, cand_tokens = tokens.candidates, tokens.prompt, tokens.per_candidate
            n0 = len(prompt_tokens)
            logprob = np.empty(len(cands), dtype=np.float64)
            for i, ct in enumerate(cand_tokens):
                check(cancel)
                self._reset_cache()
                seq = prompt_tokens + ct[:-1]
                out = []
                for start in range(0, len(seq), self.n_batch):
                    chunk = seq[start:start + self.n_batch]
                    want = [start + j >= n0 - 1 for j in range(len(chunk))]
                    self._decode(chunk, range(start, start + len(chunk)), [0] * len(chunk), want)
                    if any(want):
                        out.append(self._output_logits(sum(want)).copy())
                logits = np.concatenate(out)
                logprob[i] = log_softmax_at(logits, np.asarray(ct)).sum()
            self._reset_cache()
            return CandidateScores(cands, logprob, [len(t) for t in cand_tokens],
                                   extra={"prompt_tokens": n0, "path": "uncached"})

    def _reset_cache(self) -> None:
        self._lib.llama_memory_clear(self._mem, True)
        self._llm.n_tokens = 0
        self._llm._requires_eval = True
        self._last_lsm_n = -1

    # -- generation -------------------------------------------------------------------------
    def complete(self, prompt: str, *, max_tokens: int = 64, stop: Sequence[str] | None = None,
                 temperature: float = 0.0) -> str:
        with self._lock:
            self._last_lsm_n = -1  # generation moves seq 0 past the scored prompt
            try:
                out = self._llm.create_completion(
                    prompt, max_tokens=int(max_tokens), stop=list(stop) if stop else None,
                    temperature=float(temperature), top_k=1 if temperature <= 0 else 40,
                    seed=int(self.options.seed))
            except ValueError as exc:
                raise BackendError(f"completion failed: {exc}") from None
            return out["choices"][0]["text"]

    def _stream(self, msgs, max_tokens, temperature, cancel) -> Iterator[str]:
        transcript = self.chat_mode == "transcript"
        with self._lock:
            self._last_lsm_n = -1
            try:
                if transcript:
                    chunks = self._llm.create_completion(
                        render_transcript(msgs), stream=True, max_tokens=max_tokens,
                        temperature=temperature, seed=int(self.options.seed),
                        stop=list(TRANSCRIPT_STOPS))
                else:
                    chunks = self._llm.create_chat_completion(
                        msgs, stream=True, max_tokens=max_tokens, temperature=temperature,
                        seed=int(self.options.seed))
            except ValueError as exc:
                raise BackendError(f"chat failed: {exc}") from None
            held = ""  # transcript: a tail that may be the start of a stop string ("\nUser")
            started = False  # transcript: the reply's leading blank space is not shown
            try:
                for chunk in chunks:
                    if cancel is not None and cancel.cancelled:
                        raise Cancelled()
                    choice = chunk["choices"][0]
                    if not transcript:
                        text = choice["delta"].get("content")
                        if text:
                            yield text
                        continue
                    text, held = _split_stop_prefix(held + (choice.get("text") or ""))
                    if not started:
                        text = text.lstrip()
                    if text:
                        started = True
                        yield text
                # What is still held when the tokens run out is a cut-off "\nUser": dropped.
            finally:
                chunks.close()

    def close(self) -> None:
        with self._lock:
            if self._batch is not None:
                self._lib.llama_batch_free(self._batch)
                self._batch = None
            if getattr(self, "_llm", None) is not None:
                self._llm.close()
                self._llm = None
