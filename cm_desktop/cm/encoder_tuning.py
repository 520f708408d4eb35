"""The sentence encoder tuned on the user's own ratings, for the evidence rule.

From TUNE_PER_RESPONSE ratings per response on average, the evidence rule reads queries through a
copy of MiniLM fine-tuned on the bank: each rated instance x labelled with the user's answer y, a
cosine classifier head over the responses, cross-entropy, TUNE_EPOCHS passes. The bank's
classifier b(y|x), the neighbours' kernel and the response-text prior then all use that copy, so
"near" means near in what this user distinguishes. The frozen encoder stays what the other rules,
the Rate view's coverage and the stored embeddings use.

Nothing here is tuned on test data: the settings below were fixed on the curves' pools (dev
harness, one simulated user each) and are the same for every bank.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from cm_desktop.cancel import check

log = logging.getLogger(__name__)

# From this many ratings per response on average. Measured on the curves (3 simulated users,
# cm-evidence, frozen -> tuned): massive_scenario +1.5 / +1.5 / +1.4 points at 100 / 300 / 500
# ratings, banking77 +2.6 / +2.8 at 400 / 500, clinc +0.9 at 750. From 2 rather than 4 (random
# order, dev harness on the curves' pools): banking77 +3.8 / +2.2 at 200 / 300 ratings (2.6 / 3.9
# per response), coverage order +1.7 at 300; clinc +0.5 / +0.8 at 300 / 500 (2.0 / 3.3);
# massive_scenario -0.4 at 50 (2.8). From 1: banking77 +2.7 more at 100 (1.3), but clinc -0.7 at
# 200 (1.3) and massive_scenario -0.7 at 25 (1.4).
TUNE_PER_RESPONSE = 2
# 8 epochs: +1.0 at 300 ratings and -0.3 at 576 on massive_scenario (3 users), at twice the time
TUNE_EPOCHS = 4
TUNE_BATCH = 16
TUNE_LR = 3e-5          # the encoder's weights: small steps, it starts from a good place
HEAD_LR = 1e-2          # the classifier head starts from nothing
HEAD_SCALE = 20.0       # cosine logits' inverse temperature
TUNE_SEED = 0
# A tuned encoder is reused until the bank has grown by this share of the ratings it was tuned on
# (a rating is then read through an encoder tuned without it; re-tuning after every rating would
# cost the user tens of seconds each time).
RETUNE_GROWTH = 0.1
ENCODE_CACHE = 50_000   # texts whose tuned embedding is kept (384 floats each: ~77 MB at most)


def _dimension(model) -> int:
    # sentence-transformers 5 renamed get_sentence_embedding_dimension
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(get())


def should_tune(embedder, n_ratings: int, n_responses: int) -> bool:
    """Whether a bank of n_ratings over n_responses is read through `embedder` tuned on it: only
    the MiniLM encoder has weights to tune (the hashed n-grams have none)."""
    return (hasattr(embedder, "sentence_model") and n_responses > 1
            and n_ratings >= TUNE_PER_RESPONSE * n_responses)


def training_key(texts: Sequence[str], labels: Sequence[int], n_classes: int) -> str:
    """What a tuned encoder was trained on, as a short hash (its name carries it, so embeddings
    from two tunings are never mixed)."""
    h = hashlib.sha256(f"{n_classes}|{TUNE_EPOCHS}|{TUNE_LR}|{TUNE_SEED}".encode())
    for text, label in zip(texts, labels):
        h.update(f"\x00{int(label)}\x00{text}".encode("utf-8"))
    return h.hexdigest()[:16]


class TunedEmbedder:
    """An Embedder (retrieval.Embedder's interface) over a fine-tuned copy of a MiniLM model."""

    def __init__(self, model, base_name: str, key: str, n_ratings: int,
                 instances: frozenset[str]) -> None:
        self._model = model
        self.name = f"{base_name}+tuned-{key}"
        self.key = key
        self.n_ratings = n_ratings          # how many ratings it was tuned on
        self.instances = instances          # which texts (to tell when one was removed)
        self._cache: dict[str, np.ndarray] = {}

    def _encode(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            vecs = self._model.encode(texts, batch_size=64, show_progress_bar=False,
                                      convert_to_numpy=True, normalize_embeddings=True)
        return np.asarray(vecs, dtype=np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, d) unit rows. Each text is encoded once: the bank's instances are read again after
        every refresh, and only the new ones cost a pass."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, _dimension(self._model)), dtype=np.float32)
        new = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if len(new) > ENCODE_CACHE:
            return self._encode(texts)
        if new:
            if len(self._cache) + len(new) > ENCODE_CACHE:
                self._cache.clear()
            self._cache.update(zip(new, self._encode(new)))
        return np.vstack([self._cache[t] for t in texts])

    def still_fits(self, instances: Sequence[str]) -> bool:
        """Whether this tuning may serve a bank whose rated instances are `instances`: every text
        it was tuned on is still rated (a removed rating must stop shaping decisions) and the bank
        has grown by less than RETUNE_GROWTH since."""
        now = set(instances)
        return (self.instances <= now
                and len(instances) < self.n_ratings * (1.0 + RETUNE_GROWTH))


def tune_encoder(base, texts: Sequence[str], labels: Sequence[int], n_classes: int, *,
                 cancel=None,
                 progress: Callable[[int, int], None] | None = None) -> TunedEmbedder:
    """Fine-tune a copy of `base`'s MiniLM on (texts, labels); base is left as it was.
    Deterministic for the same inputs on the same machine. progress(step, steps) after each
    batch; cancel is checked between batches."""
    import torch

    if len(texts) != len(labels) or not len(texts):
        raise ValueError("tuning needs one label for each text, and at least one text")
    y = torch.tensor(np.asarray(labels, dtype=np.int64))
    if int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise ValueError("a label is outside the response set")
    source = base.sentence_model()
    torch.manual_seed(TUNE_SEED)
    model = copy.deepcopy(source)
    model.train()
    dim = _dimension(model)
    head = torch.nn.Linear(dim, n_classes)
    encoder_opt = torch.optim.AdamW(model.parameters(), lr=TUNE_LR)
    head_opt = torch.optim.AdamW(head.parameters(), lr=HEAD_LR)
    # sentence-transformers 5 renamed tokenize to preprocess
    tokenize = getattr(model, "preprocess", None) or model.tokenize
    texts = list(texts)
    n = len(texts)
    batches = -(-n // TUNE_BATCH)
    steps, step = TUNE_EPOCHS * batches, 0
    order_rng = np.random.default_rng(TUNE_SEED)
    try:
        for _ in range(TUNE_EPOCHS):
            perm = order_rng.permutation(n)
            for b in range(0, n, TUNE_BATCH):
                check(cancel)
                rows = perm[b:b + TUNE_BATCH]
                features = tokenize([texts[i] for i in rows])
                out = torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=1)
                loss = torch.nn.functional.cross_entropy(head(out) * HEAD_SCALE, y[rows])
                encoder_opt.zero_grad()
                head_opt.zero_grad()
                loss.backward()
                encoder_opt.step()
                head_opt.step()
                step += 1
                if progress is not None:
                    progress(step, steps)
    finally:
        model.eval()
    return TunedEmbedder(model, base.name, training_key(texts, labels, n_classes), n,
                         frozenset(texts))


def tuned_file(folder: Path, bank_path, profile: str) -> Path:
    """Where the encoder tuned on one profile of one bank is kept between runs of the app."""
    digest = hashlib.sha256(f"{Path(bank_path).resolve()}\x00{profile}".encode("utf-8"))
    return Path(folder) / f"{digest.hexdigest()[:24]}.pt"


def save_tuned(tuned: TunedEmbedder, base_name: str, responses: Sequence[str],
               path: Path) -> None:
    """Keep a tuning for the next run (a restart or a model switch would otherwise tune again:
    tens of seconds on a large bank). Written whole or not at all."""
    import torch

    from bank_store.files import make_private_dirs

    make_private_dirs(path.parent)
    tmp = path.with_name(path.name + ".part")
    # the user's own rated texts are in it, as in the bank: readable by the user only
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        torch.save({"state": tuned._model.state_dict(), "base": base_name, "key": tuned.key,
                    "n_ratings": tuned.n_ratings, "instances": sorted(tuned.instances),
                    "responses": list(responses)}, out)
    os.replace(tmp, path)


def load_tuned(base, responses: Sequence[str], path: Path) -> TunedEmbedder | None:
    """The tuning kept at `path` for this base encoder and response set; None if there is none,
    it was tuned for others, or it does not read (then the engine tunes again and overwrites it)."""
    import torch

    if not path.is_file():
        return None
    try:
        # weights_only: tensors, strings and numbers only, never code from the file
        data = torch.load(path, map_location="cpu", weights_only=True)
        if data.get("base") != base.name or data.get("responses") != list(responses):
            return None
        model = copy.deepcopy(base.sentence_model())
        model.load_state_dict(data["state"])
        model.eval()
        return TunedEmbedder(model, base.name, str(data["key"]), int(data["n_ratings"]),
                             frozenset(str(t) for t in data["instances"]))
    except Exception:  # noqa: BLE001 - a damaged or foreign file: tune again
        log.warning("the kept tuned encoder %s does not read; tuning again", path, exc_info=True)
        return None


class BankTuning:
    """One profile's tuned encoder across the engine's bank refreshes: when to tune, when a
    tuning still serves, where it is kept, and whether a decision may wait for it.

    folder: where a tuning is kept between runs (None: not kept; the app and `cm chat` set theirs).
    defer: True (the app) - a decision never waits for a tuning: it reads through the last tuning
    still valid, or the frozen encoder, and sets `due`; `tune_now` runs in idle time.
    progress(step, steps): called while tuning."""

    def __init__(self, base, bank_path, profile: str) -> None:
        self.base = base
        self.bank_path = bank_path
        self.profile = profile
        self.folder: Path | None = None
        self.defer = False
        self.due = False
        self.progress: Callable[[int, int], None] | None = None
        self._tuned: tuple[tuple[str, ...], TunedEmbedder] | None = None

    def index_for(self, index, cancel=None):
        """The rating index the evidence rule reads: `index` through the tuning where the bank
        has enough ratings (tuning first unless deferred), else `index` itself."""
        if not should_tune(self.base, len(index), len(index.responses)):
            return index
        responses = tuple(index.responses)
        if self._tuned is None and self.folder is not None:
            loaded = load_tuned(self.base, responses, self._kept_file())
            self._tuned = None if loaded is None else (responses, loaded)
        tuned = self._tuned[1] if self._tuned is not None and self._tuned[0] == responses else None
        if tuned is not None and tuned.still_fits(index.instances):
            self.due = False
            return index.with_embedder(tuned)
        if not self.defer:
            return index.with_embedder(self._tune(index, cancel))
        self.due = True
        # meanwhile: the last tuning if the bank only grew since (every rating it was tuned on is
        # still there), else the frozen encoder; never one tuned on a removed rating
        if tuned is not None and tuned.instances <= set(index.instances):
            return index.with_embedder(tuned)
        return index

    def tune_now(self, index, cancel=None) -> bool:
        """Tune on `index` if a deferred decision found it due; True if it tuned."""
        if not self.due:
            return False
        self._tune(index, cancel)
        return True

    def _kept_file(self) -> Path:
        return tuned_file(self.folder, self.bank_path, self.profile)

    def _tune(self, index, cancel) -> TunedEmbedder:
        responses = tuple(index.responses)
        tuned = tune_encoder(self.base, index.instances, index.user_idx, len(responses),
                             cancel=cancel, progress=self.progress)
        self._tuned = (responses, tuned)
        self.due = False
        if self.folder is not None:
            save_tuned(tuned, self.base.name, responses, self._kept_file())
        return tuned
