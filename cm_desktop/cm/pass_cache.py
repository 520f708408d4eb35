"""p(y'|x) computed once per query and kept on disk.

A learning curve asks the same question about the same queries at every bank size: what does the
model say about x? Under a prompt that does not depend on the bank (vanilla) the answer does not
change with the bank, so each query is scored once and the distributions are stored in an .npz
keyed by everything that could change them: the query texts, the response set, the model's
fingerprint, the strategy and the scoring rule. Every size, order and method then reads the cache;
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


def cache_key(texts: Sequence[str], responses: Sequence[str], fingerprint: str, strategy: str,
              calibrate: bool, length_normalise: bool) -> str:
    """A short hash of everything p(y'|x) depends on."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "texts": list(texts), "responses": list(responses),
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


def _load(path: Path, n: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.zeros((n, r), dtype=np.float64)
    seconds = np.zeros(n, dtype=np.float64)
    done = np.zeros(n, dtype=bool)
    if path.is_file():
        try:
            with np.load(path) as z:
                if z["p"].shape == (n, r):
                    p, seconds, done = z["p"].astype(np.float64), z["seconds"], z["done"]
        except (OSError, ValueError, KeyError):
            pass            # a torn or foreign file: recompute (the key already matched)
    return p, seconds, done


def _save(path: Path, p: np.ndarray, seconds: np.ndarray, done: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, p=p.astype(np.float32), seconds=seconds, done=done)
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
    key = cache_key(texts, engine.responses, fingerprint, engine.strategy, engine.calibrate,
                    engine.length_normalise)
    safe_label = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:60]
    path = cache_dir / f"{safe_label}-{key}.npz"
    n, r = len(texts), len(engine.responses)
    p, seconds, done = _load(path, n, r)
    todo = np.flatnonzero(~done)
    if len(todo):
        engine.warm_up(cancel)
    computed = 0
    for j, i in enumerate(todo, 1):
        check(cancel)
        t0 = time.perf_counter()
        outcome = engine.model_pass(texts[i], cancel)
        seconds[i] = time.perf_counter() - t0
        p[i] = outcome.p
        done[i] = True
        computed += 1
        if j % save_every == 0:
            _save(path, p, seconds, done)
        if progress:
            progress(int(done.sum()), n)
    if computed or not path.is_file():
        _save(path, p, seconds, done)
    return PassResult(p, seconds, computed, path)
