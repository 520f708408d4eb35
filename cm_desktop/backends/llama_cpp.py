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

Chat runs in its own sequence of the same cache (the last one), so a conversation's prompt prefix
stays there between turns while scoring keeps its prompt in sequence 0: turn 10 evaluates only
what turn 9 did not hold, and neither evicts the other unless the cache is full. The prompt is
the GGUF's own chat template when it carries one (tokenizer.chat_template), a named chat format
when one is chosen, and otherwise, for a base model, a plain transcript. Generation is llama.cpp's
sampler chain with a repeat penalty, and a reply that loops on one block of tokens is ended.
Long work checks the cancel token between prompt chunks of n_ubatch tokens, between candidate
rounds and between generated tokens.

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
from cm_desktop.backends.chat_text import is_base_model
from cm_desktop.backends.llama_chat import ChatGeneration
from cm_desktop.backends.llama_scoring import BranchScoring
from cm_desktop.cancel import CancelToken, check

# Chat formats by architecture, for GGUF files that carry no tokenizer.chat_template.
_CHAT_FORMAT_BY_ARCH = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "llama": "llama-3",
                        "qwen2": "qwen", "mistral": "mistral-instruct"}
# Memory, not speed, sets these: llama.cpp keeps an output buffer of (rows) x vocab floats, 1 MiB
# a row for Gemma's 262k vocabulary, sized by n_seq_max at start and grown to the most rows any
# decode asked logits for. 64 + 64 keep it at 64 MiB; more rows per call saved no time on CPU
# (the work is per row either way), only decode calls.
_MAX_SEQUENCES = 64   # candidates decoded together per round: this - 2 (scoring prompt, chat)


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


class LlamaCppBackend(BranchScoring, ChatGeneration, Backend):
    kind = "llama_cpp"

    @dataclass
    class Options(_Options):
        kind = "llama_cpp"
        model_path: str | None = None      # a GGUF file; None: the embedded Gemma
        # None: the GGUF's chat template, else a transcript (base model) or the architecture's
        # format; "transcript", or a llama-cpp-python format name ("gemma", "llama-3", ...)
        chat_format: str | None = None
        n_ctx: int = bounded(4096, 64, 1 << 20)
        n_threads: int | None = bounded(None, 1, 256, none_ok=True)  # None: os.cpu_count()
        n_batch: int = bounded(512, 8, 1 << 16)
        # rows per compute step; llama.cpp's worst-case logits buffer is n_ubatch x vocab floats
        # (128 MiB for Gemma's 262k vocabulary at 128, 512 MiB at 512)
        n_ubatch: int = bounded(128, 8, 1 << 16)
        seed: int = bounded(0, 0, 2**32 - 1)
        repeat_penalty: float = bounded(1.1, 1.0, 2.0)   # 1.0: off
        repeat_last_n: int = bounded(64, 0, 4096)        # generated tokens the penalty looks at
        top_k: int = bounded(40, 1, 1000)                # sampling (temperature > 0) only
        top_p: float = bounded(0.95, 0.01, 1.0)

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
        # No more sequences than n_batch: llama.cpp reserves at least n_seq_max output rows
        # per decode but caps the output buffer at n_batch rows, and aborts the process
        # (GGML_ASSERT n_outputs_max <= cparams.n_outputs_max) on the first decode otherwise.
        n_seq = min(_MAX_SEQUENCES, int(config.n_batch),
                    int(getattr(llama_cpp, "llama_max_parallel_sequences", lambda: 1)()))
        try:
            with _context_params_for(llama_cpp, n_seq):
                self._llm = llama_cpp.Llama(
                    model_path=str(path), n_ctx=int(config.n_ctx), n_batch=int(config.n_batch),
                    n_ubatch=min(int(config.n_ubatch), int(config.n_batch)), n_threads=self.n_threads,
                    n_threads_batch=self.n_threads, seed=int(config.seed), logits_all=False,
                    verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelFileError(f"llama.cpp could not load {path}: {exc}") from None
        llm = self._llm
        self.metadata = dict(llm.metadata)
        self.arch = self.metadata.get("general.architecture", "")
        self.n_ctx = self.context_tokens = llm.n_ctx()
        self.n_vocab = llm.n_vocab()
        self.n_batch = int(config.n_batch)
        self.n_ubatch = min(int(config.n_ubatch), self.n_batch)
        self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
        cp = llm.context_params
        self.n_sequences = int(cp.n_seq_max) if cp.kv_unified else 1
        # Sequence 0: the scoring prompt; the last: the chat; between them: candidate branches.
        self.batched = self.n_sequences > 2
        self.chat_seq = self.n_sequences - 1 if self.batched else 0
        self.n_branches = self.n_sequences - 2 if self.batched else 0
        self._held: dict[int, list[int]] = {0: [], self.chat_seq: []}  # tokens each seq holds
        self._lsm: np.ndarray | None = None      # log-softmax at the last scoring-prompt token
        self._lsm_tokens: list[int] | None = None  # ... of this prompt
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, self.n_sequences)
        try:
            self._set_chat_mode(config.chat_format)
        except BaseException:
            self.close()
            raise
        self.stats.update(prompt_tokens_evaluated=0, prompt_tokens_reused=0, decode_calls=0,
                          candidate_rows_decoded=0, chat_tokens_evaluated=0,
                          chat_tokens_reused=0, evictions=0)
        self.last_stop_reason = ""   # of the last generation: "eog", "stop", "length", "runaway"
        self._fingerprint = file_fingerprint(self.kind, path)

    def _set_chat_mode(self, chat_format: str | None) -> None:
        """template: the GGUF's tokenizer.chat_template; format: a named llama-cpp-python format;
        transcript: a plain dialogue, for base models (as a turn markup they do not know, they
        echo the prompt; a dialogue they continue with a reply)."""
        from llama_cpp import llama_chat_format

        template = self.metadata.get("tokenizer.chat_template")
        self._formatter = None
        if chat_format is None and template:
            bos, eos = self._llm.token_bos(), self._llm.token_eos()
            text = self._llm._model.token_get_text
            try:
                self._formatter = llama_chat_format.Jinja2ChatFormatter(
                    template=template, eos_token=text(eos) if eos != -1 else "",
                    bos_token=text(bos) if bos != -1 else "", stop_token_ids=[eos])
            except Exception as exc:  # jinja2's TemplateSyntaxError and kin
                raise ModelFileError(f"the chat template in {self.model_path.name} does not "
                                     f"compile: {exc}") from None
            self.chat_mode, self.chat_format = "template", "chat_template.default"
            return
        if chat_format is None:
            chat_format = ("transcript" if is_base_model(self.metadata)
                           else _CHAT_FORMAT_BY_ARCH.get(self.arch, "transcript"))
        if chat_format == "transcript":
            self.chat_mode = self.chat_format = "transcript"
            return
        wanted = chat_format.replace("-", "").replace("_", "").lower()
        for name in dir(llama_chat_format):
            if name.startswith("format_") and name[7:].replace("_", "") == wanted:
                self._formatter = getattr(llama_chat_format, name)
                break
        else:
            raise BackendError(f"unknown chat format {chat_format!r}; leave it empty to use the "
                               "model's own template, or name one of llama-cpp-python's formats")
        self.chat_mode, self.chat_format = "format", chat_format

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

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in a prompt (what the chat counts to fit a conversation)."""
        return len(self._token_ids(text, prompt=False))

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
        if rc == 1:
            raise _NoRoom("no free cells in the cache")
        if rc != 0:
            raise BackendError(f"llama_decode failed (code {rc}): the context ({self.n_ctx} "
                               f"tokens) may be full; shorten the prompt or raise n_ctx")

    def _output_logits(self, n_rows: int) -> np.ndarray:
        ptr = self._lib.llama_get_logits(self._ctx)
        return np.ctypeslib.as_array(ptr, shape=(n_rows, self.n_vocab))

    def _forget(self, seq: int, keep: int) -> int:
        """Drop what `seq` holds from position `keep` on; returns the tokens it still holds."""
        held = self._held[seq]
        if keep >= len(held):
            return len(held)
        if not self._lib.llama_memory_seq_rm(self._mem, seq, keep, -1):
            # this cache cannot cut a sequence part-way: drop the sequence whole
            if not self._lib.llama_memory_seq_rm(self._mem, seq, -1, -1):
                self._reset_cache()
                return 0
            keep = 0
        del held[keep:]
        if seq == 0:
            self._lsm_tokens = None
        return keep

    def _evict_other(self, seq: int) -> bool:
        """Free the cache cells of the persistent sequence that is not `seq` (the cache is full)."""
        other = self.chat_seq if seq == 0 else 0
        if other == seq or not self._held[other]:
            return False
        self._forget(other, 0)
        self.stats["evictions"] += 1
        return True

    def _decode_in(self, seq: int, tokens, positions, seqs, want_logits) -> None:
        """_decode, and when the cache has no room, once more after freeing the other sequence."""
        try:
            self._decode(tokens, positions, seqs, want_logits)
        except _NoRoom:
            if not self._evict_other(seq):
                raise BackendError(f"the context ({self.n_ctx} tokens) is full; shorten the "
                                   "prompt or raise n_ctx") from None
            self._decode(tokens, positions, seqs, want_logits)

    def _ensure_prefix(self, seq: int, tokens: list[int], cancel: CancelToken | None,
                       counter: str) -> None:
        """Make `seq` hold exactly `tokens`, decoding only what it does not hold yet; the
        logits of the last token are then the context's output row 0."""
        n = len(tokens)
        held = self._held[seq]
        limit = min(len(held), n)
        common = 0
        if limit:
            diff = np.nonzero(np.asarray(held[:limit]) != np.asarray(tokens[:limit]))[0]
            common = int(diff[0]) if len(diff) else limit
        # always re-decode at least the last token to get its logits
        keep = self._forget(seq, min(common, n - 1))
        self.stats[counter + "_reused"] += keep
        pos = keep
        while pos < n:
            check(cancel)
            chunk = tokens[pos:pos + self.n_ubatch]  # a cancel is seen after each compute step
            last = [False] * len(chunk)
            if pos + len(chunk) == n:
                last[-1] = True
            self._decode_in(seq, chunk, range(pos, pos + len(chunk)), [seq] * len(chunk), last)
            held.extend(chunk)
            pos += len(chunk)
            self.stats[counter + "_evaluated"] += len(chunk)

    def _ensure_prompt(self, tokens: list[int], cancel: CancelToken | None) -> np.ndarray:
        """Make sequence 0 hold exactly `tokens`; return log-softmax at its last position."""
        if self._lsm_tokens == tokens and self._held[0] == tokens:
            self.stats["prompt_tokens_reused"] += len(tokens)
            return self._lsm
        self._ensure_prefix(0, tokens, cancel, "prompt_tokens")
        row = self._output_logits(1)[0].astype(np.float64)
        m = row.max()
        self._lsm = row - (m + np.log(np.exp(row - m).sum()))
        self._lsm_tokens = list(tokens)
        return self._lsm

    # -- scoring ----------------------------------------------------------------------------
    def score(self, prompt: str, candidates: Sequence[str], cancel: CancelToken | None = None
              ) -> CandidateScores:
        with self._lock:
            check(cancel)
            tokens = self.scoring_tokens(prompt, candidates)
            cands, prompt_tokens, cand_tokens = tokens.candidates, tokens.prompt, tokens.per_candidate
            lsm = self._ensure_prompt(prompt_tokens, cancel)
            if self.batched:
                logprob = self._score_branches(len(prompt_tokens), cand_tokens, lsm, cancel)
            else:
                logprob = self._score_sequential(len(prompt_tokens), cand_tokens, lsm, cancel)
            return CandidateScores(cands, logprob, [len(t) for t in cand_tokens],
                                   extra={"prompt_tokens": len(prompt_tokens),
                                          "path": "branches" if self.batched else "sequential"})

    def _reset_cache(self) -> None:
        self._lib.llama_memory_clear(self._mem, True)
        for held in self._held.values():
            held.clear()
        self._lsm_tokens = None

    # -- generation -------------------------------------------------------------------------
    def complete(self, prompt: str, *, max_tokens: int = 64, stop: Sequence[str] | None = None,
                 temperature: float = 0.0) -> str:
        if not isinstance(prompt, str) or not prompt:
            raise BackendError("the prompt must be a non-empty string")
        with self._lock:
            tokens = self._token_ids(prompt, prompt=True)
            if len(tokens) + int(max_tokens) > self.n_ctx:
                raise BackendError(f"prompt ({len(tokens)} tokens) and {max_tokens} more do not "
                                   f"fit the context of {self.n_ctx} tokens")
            return "".join(self._generate(0, tokens, max_tokens=int(max_tokens),
                                          temperature=float(temperature), stops=list(stop or ()),
                                          cancel=None, counter="prompt_tokens"))

    def _stream(self, msgs, max_tokens, temperature, cancel) -> Iterator[str]:
        with self._lock:
            tokens, stops = self._fit(msgs, max_tokens)
            yield from self._generate(self.chat_seq, tokens, max_tokens=max_tokens,
                                      temperature=temperature, stops=stops, cancel=cancel,
                                      counter="chat_tokens",
                                      barred_first=self.barred_openers(msgs))

    def close(self) -> None:
        with self._lock:
            if self._batch is not None:
                self._lib.llama_batch_free(self._batch)
                self._batch = None
            if getattr(self, "_llm", None) is not None:
                self._llm.close()
                self._llm = None


class _NoRoom(BackendError):
    """llama_decode found no free cells for the batch (the context is full)."""
