"""p(y'|x) computed once per query and kept on disk.

A learning curve asks the same question about the same queries at every bank size: what does the
model say about x? Under a prompt that does not depend on the bank (vanilla) the answer does not
change with the bank, so each query is scored once and the distributions are stored in an .npz,
one row per query text, in a file keyed by everything else that could change them: the response
set and its candidate texts, the model's fingerprint, the strategy and the scoring rule. Every size, order and method then reads the cache;
a curve costs one model pass per pool and test query, and an interrupted run resumes where it
stopped (the file is rewritten every `save_every` queries).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from cm_desktop.cancel import check

CACHE_VERSION = 1
# Strategies whose prompt does not depend on the bank: only these can be cached across sizes.
BANK_FREE_STRATEGIES = ("vanilla",)


def cache_key(responses: Sequence[str], fingerprint: str, strategy: str,
              calibrate: bool, length_normalise: bool) -> str:
    """A short hash of everything p(y'|x) depends on besides x (the file holds rows per text, so
    a larger or smaller --limit reuses what is there)."""
    h = hashlib.sha256()
    from cm_desktop.cm.strategies import candidate_texts

    h.update(json.dumps({"v": CACHE_VERSION, "responses": list(responses),
                         "candidates": candidate_texts(responses),
                         "fingerprint": fingerprint, "strategy": strategy,
                         "calibrate": bool(calibrate), "length_normalise": bool(length_normalise)},
                        ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()[:20]


@dataclass
class PassResult:
    p: np.ndarray              # (n, |R|) float64, rows sum to 1
    seconds: np.ndarray        # (n,) wall seconds of each query's pass when it was computed
    computed_now: int          # passes run in this call (0: everything came from the cache)
    path: Path


def _load(path: Path, r: int) -> dict[str, tuple[np.ndarray, float]]:
    """text -> (p, seconds) from the file; empty when there is none or it is unreadable."""
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            texts, p, seconds = z["texts"], z["p"], z["seconds"]
    except (OSError, ValueError, KeyError):
        return {}           # a torn or foreign file: recompute (the key already matched)
    if p.ndim != 2 or p.shape[1] != r or len(texts) != len(p):
        return {}
    return {str(t): (p[i].astype(np.float64), float(seconds[i])) for i, t in enumerate(texts)}


def _save(path: Path, known: dict[str, tuple[np.ndarray, float]]) -> None:
    texts = list(known)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, texts=np.array(texts, dtype=str),
                        p=np.array([known[t][0] for t in texts], dtype=np.float64),
                        seconds=np.array([known[t][1] for t in texts]))
    os.replace(tmp, path)           # readers see the old file or the new one, never half


def model_passes(engine, texts: Sequence[str], cache_dir: str | Path, label: str, *,
                 progress: Callable[[int, int], None] | None = None, cancel=None,
                 save_every: int = 10) -> PassResult:
    """p(y'|x) for each text under the engine's strategy, from `cache_dir` where already known.

    `engine` is a CMEngine whose strategy's prompt does not depend on the bank; `label` names the
    file (e.g. "banking77-pool") next to the key, so a person can tell the caches apart.
    """
    if engine.strategy not in BANK_FREE_STRATEGIES:
        raise ValueError(f"strategy {engine.strategy!r} depends on the bank; a curve can cache "
                         f"only {', '.join(BANK_FREE_STRATEGIES)}")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = getattr(engine.backend, "fingerprint", "") or ""
    key = cache_key(engine.responses, fingerprint, engine.strategy, engine.calibrate,
                    engine.length_normalise)
    safe_label = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:60]
    path = cache_dir / f"{safe_label}-{key}.npz"
    n, r = len(texts), len(engine.responses)
    known = _load(path, r)
    todo = [t for t in dict.fromkeys(texts) if t not in known]
    if todo:
        engine.warm_up(cancel)
    done = n - len(todo)
    for j, text in enumerate(todo, 1):
        check(cancel)
        t0 = time.perf_counter()
        outcome = engine.model_pass(text, cancel)
        known[text] = (np.asarray(outcome.p, dtype=np.float64), time.perf_counter() - t0)
        if j % save_every == 0:
            _save(path, known)
        if progress:
            progress(done + j, n)
    if todo or not path.is_file():
        _save(path, known)
    p = np.array([known[t][0] for t in texts], dtype=np.float64).reshape(n, r)
    seconds = np.array([known[t][1] for t in texts], dtype=np.float64)
    return PassResult(p, seconds, len(todo), path)
