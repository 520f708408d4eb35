"""Scoring candidates on llama.cpp: a trie of the candidates' tokens decoded in branch sequences.

Part of the llama_cpp backend (LlamaCppBackend inherits BranchScoring); split out to keep each
file to one job. See cm_desktop/backends/llama_cpp.py for the cache layout.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from cm_desktop.backends.base import BackendError, CandidateScores
from cm_desktop.cancel import CancelToken, check

# Memory, not speed, sets this: llama.cpp keeps an output buffer of (rows) x vocab floats, 1 MiB
# a row for Gemma's 262k vocabulary, grown to the most rows any decode asked logits for.
_MAX_OUTPUT_ROWS = 64  # logit rows per candidate round


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


class BranchScoring:
    """The candidate rounds of LlamaCppBackend.score, and the naive reference score_uncached."""

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
            # a round is one decode call, so its rows also fit the batch (n_batch may be < 64)
            full = (len(nodes) + len(new) > min(_MAX_OUTPUT_ROWS, self.n_batch)
                    or len(cur) >= self.n_branches
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
                self._decode_in(0, toks, pos, seqs, [True] * len(toks))
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
                    self._decode_in(0, inputs, range(n0, n0 + len(inputs)), [0] * len(inputs),
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

