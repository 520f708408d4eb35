"""The user's own learning curve: how often the raw model and CM gave what this user meant, as
their bank grew (the Bank view's plot, the Rate view's "the curve has flattened" hint).

Test-then-train over the profile's ratings in the order they were made: at each of the user's own
ratings k (source "rated"), the raw model agreed if its stored y' equals the user's y; CM agreed
if, with the bank as it was before rating k (ratings 1..k-1, any source), the app's default rule
(the evidence rule, `cm.evidence`) would have chosen y. Every point is held out: it never sees
its own rating.

No model pass. CM's decision uses the model's distribution p(y'|x) stored with the rating (the
Rate and Chat views store it, migration 0005), or p = one-hot(y') for a rating that has none -
the same p the engine's evidence rule tunes with. With one-hot p the rule still does what
matters here: the nearest earlier ratings, the response-text prior and the bank's classifier can
overrule the model, and the model's corrected distribution keeps its say where the bank knows
little. The rule is tuned and its classifier fitted (`EvidenceRule`) on the bank at checkpoints
5, 10, 20, 40, ... ratings rather than before every rating as the live engine does: the decision
at k depends only on ratings before k either way, and the tuning cost stays O(n log n) instead
of O(n^2). Likewise the encoder tuned on the bank (`encoder_tuning`, from 2 ratings per
response): tuned at those checkpoints on the ratings before them, where the engine tunes again
after 10 % growth.

Incremental: each evaluated rating is cached in the bank (`curve_points`, migration 0004) with a
hash of the ids of every rating up to it, so reopening the view reads the cache and evaluates only
ratings that are new (or that follow a rating removed from the middle of the history).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from bank_store.rate_state import CurveRow
from cm_desktop.cancel import check
from cm_desktop.cm.retrieval import Embedder, RatingIndex, default_embedder, normalise_text

# A new version when the rule's decisions change, so that rows cached by the old rule are
# computed again (v2: the bank classifier's model features, `evidence.MODEL_FEATURE_WEIGHT`; v3:
# the encoder tuned on the bank, `encoder_tuning`; v4: tuned from 2 ratings per response, not 4).
RULE_VERSION = "prequential-evidence-v4"
FIRST_TUNE = 5          # the engine tunes from 5 ratings on (CMEngine.refresh)
WINDOW = 25             # the plot's trailing window, in the user's ratings
FLAT_SPAN = 50          # "your last 50 ratings changed little"
MIN_NOISE = 0.02        # the smallest change that counts, where both windows are all-or-nothing


def curve_rule(embedder_name: str, responses) -> str:
    """The cache key of how rows are computed: rule version, embedder, response set (indices)."""
    digest = hashlib.sha256("\x1f".join(responses).encode("utf-8")).hexdigest()[:16]
    return f"{RULE_VERSION}|{embedder_name}|{digest}"


def id_chain(ids) -> list[str]:
    """chain[i] = hash of ids[0..i]: equal exactly while the history up to i is unchanged."""
    out, h = [], b""
    for rid in ids:
        h = hashlib.sha1(h + rid.encode("utf-8")).digest()
        out.append(h.hex())
    return out


def _tune_checkpoint(n_before: int) -> int:
    """The bank size CM's parameters were last tuned at, for a decision with n_before ratings."""
    if n_before < FIRST_TUNE:
        return 0
    c = FIRST_TUNE
    while c * 2 <= n_before:
        c *= 2
    return c


@dataclass
class UserCurve:
    """The evaluated ratings, oldest first. positions: their place among all the profile's ratings."""
    positions: list[int] = field(default_factory=list)
    model_agrees: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    cm_agrees: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    reused: int = 0              # rows read from the cache
    computed: int = 0            # rows evaluated in this call
    total_ratings: int = 0       # the bank it was computed on: ratings of every source whose
                                 # y' and y are in the response set (RatingIndex keeps those)

    def __len__(self) -> int:
        return len(self.positions)

    def windowed(self, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, model, cm): x = 1..n the user's ratings; y = agreement over the trailing `window`
        ratings (over all of them while fewer)."""
        n = len(self)
        x = np.arange(1, n + 1)
        if n == 0:
            return x, np.zeros(0), np.zeros(0)

        def trailing(flags: np.ndarray) -> np.ndarray:
            c = np.concatenate([[0.0], np.cumsum(flags, dtype=np.float64)])
            lo = np.maximum(x - window, 0)
            return (c[x] - c[lo]) / (x - lo)

        return x, trailing(self.model_agrees), trailing(self.cm_agrees)

    def recent_change(self, span: int = FLAT_SPAN) -> tuple[float, float] | None:
        """(gain, noise): CM's agreement over the last `span` ratings minus over the `span` before,
        and the standard error of that difference; None with fewer than 2 * span ratings."""
        if len(self) < 2 * span:
            return None
        last = float(np.mean(self.cm_agrees[-span:]))
        before = float(np.mean(self.cm_agrees[-2 * span:-span]))
        noise = float(np.sqrt((last * (1 - last) + before * (1 - before)) / span))
        return last - before, noise

    def flattened(self, span: int = FLAT_SPAN) -> bool:
        """The last `span` ratings changed CM's agreement by no more than its own noise.

        Why this definition: what a user wants to know is whether more ratings of the kind they
        are giving still pay off. Comparing CM's held-out agreement on the last 50 ratings with the
        50 before asks exactly that, and a change within one standard error of two 50-rating
        samples (about 8 points at 80% agreement) cannot be told from chance - so more ratings of
        the same kind are not visibly helping, and ratings where the bank knows least (the
        coverage order) are the ones left to try. A clear drop is not "flat": the user's meanings
        are changing and the bank is catching up."""
        change = self.recent_change(span)
        if change is None:
            return False
        gain, noise = change
        return abs(gain) <= max(noise, MIN_NOISE)


def _current_mask(fingerprints: np.ndarray, sources: np.ndarray, fingerprint) -> np.ndarray:
    """bank_store.rebase.is_current for many ratings at once (kept equal to it by a test)."""
    if fingerprint is None:
        return np.ones(len(fingerprints), dtype=bool)
    none = np.array([f is None for f in fingerprints], dtype=bool)
    return np.where(none, sources != "imported", fingerprints == fingerprint)


def _checkpoint_rule(index: RatingIndex, c: int, fps: np.ndarray, srcs: np.ndarray,
                     response_vecs, cancel):
    """The evidence rule as the engine would build it on the first c ratings (c = 0: the
    defaults, as for an empty bank)."""
    from cm_desktop.cm.evaluate import counts_matrix
    from cm_desktop.cm.evidence import EvidenceRule

    prefix = RatingIndex.from_arrays(index.responses, index.instances[:c], index.model_idx[:c],
                                     index.user_idx[:c], index.embeddings[:c], index.embedder,
                                     model_p=index.model_p[:c],
                                     model_p_stored=index.model_p_stored[:c])
    prefix.current = _current_mask(fps[:c], srcs[:c], index.ratings[c - 1].fingerprint)
    from cm_desktop.cm import encoder_tuning as et

    if et.should_tune(index.embedder, c, len(index.responses)):
        # as the engine does with this many ratings: the rule reads through an encoder tuned on them
        tuned = et.tune_encoder(index.embedder, prefix.instances, prefix.user_idx,
                                len(index.responses), cancel=cancel)
        prefix, response_vecs = prefix.with_embedder(tuned), None
    return EvidenceRule(prefix, counts_matrix(prefix), response_vecs=response_vecs, cancel=cancel)


def evaluate_positions(index: RatingIndex, positions, cancel=None,
                       tuned: dict | None = None) -> list[tuple[bool, bool]]:
    """(model agrees, CM agrees) for each rating at `positions` of `index`, each decided on the
    ratings before it only (module docstring). `tuned`: checkpoint -> the evidence rule built
    there, filled and reused (pass one dict across calls on the same index)."""
    tuned = {} if tuned is None else tuned
    r = len(index.responses)
    fps = np.array([rt.fingerprint for rt in index.ratings], dtype=object)
    srcs = np.array([rt.source for rt in index.ratings], dtype=object)
    out = []
    for i in positions:
        check(cancel)
        m, u = int(index.model_idx[i]), int(index.user_idx[i])
        if i == 0:
            out.append((m == u, m == u))      # an empty bank keeps the model's answer
            continue
        current = _current_mask(fps[:i], srcs[:i], index.ratings[i].fingerprint)
        counts = np.zeros((r, r))
        np.add.at(counts, (index.model_idx[:i][current], index.user_idx[:i][current]), 1.0)
        c = _tune_checkpoint(i)
        if c not in tuned:
            vecs = next((rule.response_vecs for rule in tuned.values()
                         if rule.response_vecs is not None
                         and rule.index.embedder is index.embedder), None)
            tuned[c] = _checkpoint_rule(index, c, fps, srcs, vecs, cancel)
        rule = tuned[c]
        vecs = index.embeddings
        if rule.index.embedder is not index.embedder:     # a tuned encoder (each text once)
            vecs = rule.index.embedder.encode(index.instances[:i + 1])
        sims = vecs[:i] @ vecs[i]
        k = min(rule.k, i)
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        qvec = vecs[i][None, :].astype(np.float64)
        # rating i's stored p is what its own model said, as the engine asked then would have
        # had it (the counts above are that model's too); only a missing one is not known
        final = rule.scores(index.model_p[i][None, :], qvec, counts, index.model_idx[top][None, :],
                            index.user_idx[top][None, :], sims[top][None, :],
                            known=index.model_p_stored[i:i + 1])[0]
        out.append((m == u, int(np.argmax(final)) == u))
    return out


def _own_ratings(index: RatingIndex) -> list[int]:
    """Positions of the user's own ratings: source "rated", less rebase twins. A rebase stores,
    for another model's rating, the current model's y' for the same (x, y), keeping the source:
    the user answered nothing new there, and held out against its twin (similarity 1) CM would
    score a point it never earned."""
    seen: dict[tuple[str, int], set] = {}
    out = []
    for i, rt in enumerate(index.ratings):
        key = (normalise_text(rt.instance), int(index.user_idx[i]))
        models = seen.setdefault(key, set())
        if rt.source == "rated" and not (models - {rt.fingerprint}):
            out.append(i)
        models.add(rt.fingerprint)
    return out


def compute_user_curve(bank, profile: str, embedder: Embedder | None = None,
                       cancel=None, min_rated: int = 0) -> UserCurve | None:
    """The profile's curve: cached rows whose history is unchanged are read back, the rest are
    evaluated and stored. Runs on a background thread (a bank query): it writes only the cache
    (and, through RatingIndex, missing embeddings), as the Bank view's other reads do.
    min_rated: None, without loading the embedder, while the user has rated fewer (a question
    such as "has it flattened" needs that many)."""
    if min_rated and bank.stats(profile)["by_source"].get("rated", 0) < min_rated:
        return None
    embedder = embedder or default_embedder()
    index = RatingIndex(bank, profile, embedder)
    rule = curve_rule(embedder.name, index.responses)
    chain = id_chain([rt.id for rt in index.ratings])
    cached = bank.curve_rows(profile, rule)
    valid: list[CurveRow] = []
    for row in cached:
        if row.position >= len(chain) or chain[row.position] != row.chain:
            break
        valid.append(row)
    start = valid[-1].position + 1 if valid else 0
    todo = [i for i in _own_ratings(index) if i >= start]
    results = evaluate_positions(index, todo, cancel)
    new = [CurveRow(i, chain[i], bool(mg), bool(cg)) for i, (mg, cg) in zip(todo, results)]
    if new or len(valid) < len(cached):
        check(cancel)
        bank.store_curve_rows(profile, rule, new, keep_before=start)
    rows = valid + new
    return UserCurve(positions=[row.position for row in rows],
                     model_agrees=np.array([row.model_agrees for row in rows], dtype=bool),
                     cm_agrees=np.array([row.cm_agrees for row in rows], dtype=bool),
                     reused=len(valid), computed=len(new), total_ratings=len(index))
