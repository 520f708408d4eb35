"""One call from (profile, x) to a decision with its trace.

A decision has two parts, kept apart so evaluation can reuse the expensive one:
`model_pass(x)` runs the strategy's prompts and gives p(y'|x) (the only part that touches the
model), `apply_memory(outcome, variant)` turns it into the answer with the bank (the paper rule
adds one re-choice pass when |C(y')| > 1; marginal and instance need no model at all).
"""

from __future__ import annotations

import time
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from cm_desktop.cancel import check
from cm_desktop.cm import DEFAULT_VARIANT, VARIANTS, coverage
from cm_desktop.cm import marginalize as mz
from cm_desktop.cm import strategies as st
from cm_desktop.cm.encoder_tuning import BankTuning
from cm_desktop.cm.retrieval import Embedder, Neighbour, RatingIndex, default_embedder

TOP_N = 9           # the Rate view offers the top 9 as keys 1-9
ENCODE_CHUNK = 64   # queries embedded between two cancel checks when the queue is ranked
# queue texts whose frozen embedding the engine keeps (384 floats each: about 15 MB)
FROZEN_VECTORS_KEPT = 2 * coverage.RANK_LIMIT
# backend -> {response set -> content-free log-likelihoods}; dies with the backend
_BASELINES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@dataclass
class Trace:
    query: str
    strategy: str
    variant: str
    model_response: str
    model_top: list[tuple[str, float]]
    candidates: list[tuple[str, int]]
    chosen: str
    rule: str
    passes: int
    seconds: float
    neighbours: list[tuple[str, str, float]] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    # the model's whole p(y'|x) over the response set, kept for a rating made from this trace
    # (the bank stores it beside the rating); not part of the stored trace (to_dict)
    model_p: list[float] = field(default_factory=list)
    # how a follow-up was decided when two texts were (cm.chat.decide_turn); "" otherwise
    followup: str = ""
    # the encoder the evidence rule read the query through, when it was tuned on the bank
    # (encoder_tuning): "tuned on N ratings"; "" for the frozen one
    encoder: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("model_p")
        d["model_top"] = [[r, float(p)] for r, p in self.model_top]
        d["candidates"] = [[r, int(n)] for r, n in self.candidates]
        d["neighbours"] = [[x, y, float(s)] for x, y, s in self.neighbours]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Trace":
        """A stored trace (to_dict's JSON, e.g. a conversation's reply) back as a Trace."""
        return cls(str(d["query"]), str(d["strategy"]), str(d["variant"]),
                   str(d["model_response"]), [(str(r), float(p)) for r, p in d["model_top"]],
                   [(str(r), int(n)) for r, n in d["candidates"]], str(d["chosen"]),
                   str(d["rule"]), int(d["passes"]), float(d["seconds"]),
                   [(str(x), str(y), float(s)) for x, y, s in d.get("neighbours", [])],
                   {str(k): float(v) for k, v in d.get("scores", {}).items()},
                   followup=str(d.get("followup", "")), encoder=str(d.get("encoder", "")))

    def explain(self) -> str:
        """What was decided and why, in a few lines (the Chat view's Why panel, `/why` in `cm chat`)."""
        def short(text: str, limit: int = 70) -> str:
            text = " ".join(text.split())
            return text if len(text) <= limit else text[:limit - 1] + "…"

        lines = [f"Raw model response:  {self.model_response}",
                 "Top of p(y'|x):      " + ", ".join(f"{r} {p:.2f}" for r, p in self.model_top[:5]),
                 "Bank candidates C(y'): " + (", ".join(f"{r} ×{n}" for r, n in self.candidates)
                                              or "none (you have not rated this model response yet)")]
        if self.neighbours:
            lines.append("Nearest rated:")
            lines.extend(f"   “{short(x)}” → {y}  (similarity {s:.2f})" for x, y, s in self.neighbours[:5])
        lines.append(f"Memory {self.variant}, strategy {self.strategy}: rule {self.rule}")
        if self.encoder:
            lines.append(f"Similarities read through the encoder {self.encoder}")
        if self.followup:
            lines.append(f"Follow-up: {self.followup}")
        lines.append(f"Answer chosen: {self.chosen}   ·   {self.passes} model pass"
                     f"{'es' if self.passes != 1 else ''}, {self.seconds:.2f} s")
        return "\n".join(lines)


@dataclass
class ModelOutcome:
    """What the model said about one query under one strategy (variant-independent)."""
    query: str
    strategy: str
    p: np.ndarray
    model_index: int
    passes: int
    seconds: float
    query_vec: np.ndarray | None
    neighbours: list[Neighbour] | None   # None: not looked up yet (apply_memory does if needed)


class CMEngine:
    def __init__(self, backend, bank, profile_name: str, strategy: str = "vanilla",
                 variant: str = DEFAULT_VARIANT, embedder: Embedder | None = None,
                 params: mz.CMParams | None = None, length_normalise: bool = False,
                 calibrate: bool = True, tune: bool = True) -> None:
        if strategy not in st.STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(st.STRATEGIES)}")
        if variant not in VARIANTS:
            raise ValueError(f"unknown memory variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        self.backend = backend
        self.bank = bank
        self.profile_name = profile_name
        self.strategy = strategy
        self.variant = variant
        self.embedder = embedder if embedder is not None else default_embedder()
        self.length_normalise = length_normalise
        self.calibrate = calibrate
        self._baseline: tuple[tuple[str, ...], np.ndarray] | None = None
        self._fixed_params = params
        self._tune = tune and params is None
        # the responses' text embeddings for the evidence rule's prior, kept across refreshes
        # (a rating changes the bank, not the response texts): (responses, vectors)
        self._response_vecs: tuple[tuple, np.ndarray] | None = None
        # the frozen encoder's embeddings of queued queries, across refreshes (coverage_doubt)
        self._frozen_vecs: dict[str, np.ndarray] = {}
        # the encoder tuned on the bank (encoder_tuning): when to tune, reuse, keep, defer
        self.tuning = BankTuning(self.embedder, getattr(bank, "path", None), profile_name)
        self.refresh()

    # ---- bank state -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the bank (after new ratings): counts and the rating index; each rule tunes its
        parameters on the new bank when it is first used."""
        # evaluate imports engine: late import
        from cm_desktop.cm.evaluate import counts_matrix

        # One read of the ratings serves the neighbours and the counts (the bank keeps counts
        # equal to a GROUP BY over ratings, so they are derived here rather than read twice).
        # Only the current model's ratings give y' statistics (bank_store.rebase.is_current):
        # after a model switch, the old model's counts would steer the new one wrongly.
        self.fingerprint = getattr(self.backend, "fingerprint", None)
        self.index = RatingIndex(self.bank, self.profile_name, self.embedder, self.fingerprint)
        self.responses: list[str] = list(self.index.responses)
        self._pos = {r: i for i, r in enumerate(self.responses)}
        self._candidate_texts = st.candidate_texts(self.responses)
        self.counts = counts_matrix(self.index)
        self._qvecs: dict[str, np.ndarray] = {}
        self._evidence = None       # built on first use: it tunes and fits on the bank
        self._params: mz.CMParams | None = None     # likewise (the evidence rule has its own)

    @property
    def params(self) -> mz.CMParams:
        """The instance rule's parameters (and the marginal rule's alpha, the CoT/FoT examples'
        count), tuned on the bank as it is now on first use after a refresh."""
        if self._params is None:
            from cm_desktop.cm.evaluate import tune_params

            if self._fixed_params is not None:
                self._params = self._fixed_params
            elif self._tune and len(self.index) >= 5:
                self._params = tune_params(self.index, self.counts).params
            else:
                self._params = mz.CMParams()
        return self._params

    def evidence_rule(self, cancel=None):
        """The evidence rule tuned on the bank as it is now (built once per refresh)."""
        if self._evidence is None:
            from cm_desktop.cm.evidence import EvidenceRule

            index = self.tuning.index_for(self.index, cancel)
            key = (tuple(self.responses), index.embedder.name)
            vecs = self._response_vecs
            if vecs is not None and vecs[0] != key:
                vecs = None         # the response set or the encoder changed
            self._evidence = EvidenceRule(index, self.counts, cancel=cancel,
                                          response_vecs=None if vecs is None else vecs[1])
            if self._evidence.response_vecs is not None:
                self._response_vecs = (key, self._evidence.response_vecs)
        return self._evidence

    def tune_now(self, cancel=None) -> bool:
        """The tuning a deferred decision found due (the app runs it in idle time); True if it
        tuned. The next decision reads through it."""
        if not self.tuning.tune_now(self.index, cancel):
            return False
        self._evidence = None       # rebuilt on the next decision, through the new tuning
        return True

    # ---- the model's part -------------------------------------------------------------------
    def query_vector(self, x: str, index: RatingIndex | None = None) -> np.ndarray:
        """The query's embedding by `index`'s encoder (default the bank's); the last few are kept
        (one query is embedded once, whatever strategies and look-ups it goes through)."""
        index = self.index if index is None else index
        key = (index.embedder.name, x)
        vec = self._qvecs.get(key)
        if vec is None:
            vec = index.encode_query(x)
            if len(self._qvecs) >= 8:
                self._qvecs.pop(next(iter(self._qvecs)))
            self._qvecs[key] = vec
        return vec

    def warm_up(self, cancel=None) -> None:
        """Load what the first query would otherwise pay for: calibration, the embedder."""
        if self.calibrate:
            self._calibration(cancel)
        if len(self.index):
            self.index.encode_query("warm up")

    # Contextual calibration (Zhao et al. 2021): a small model puts most of its mass on whichever
    # response it likes a priori (Gemma 270M: the first one listed). Dividing p(y'|x) by
    # p(y'|content-free input) removes that prior; measured on massive_scenario 0.00 -> 0.37 and on
    # banking77 0.04 -> 0.16 (vanilla, 60 and 25 queries). Costs 3 passes once per response set.
    CONTENT_FREE = ("N/A", "", "[MASK]")

    def _calibration(self, cancel) -> np.ndarray:
        key = tuple(self.responses)
        if self._baseline is None or self._baseline[0] != key:
            per_backend = _BASELINES.setdefault(self.backend, {})
            if key not in per_backend:   # engines on one backend and response set share it
                lps = [self.backend.score(st.vanilla_prompt(self.responses, q), self._candidate_texts,
                                          cancel=cancel).logprob for q in self.CONTENT_FREE]
                per_backend[key] = np.mean(lps, axis=0)
            self._baseline = (key, per_backend[key])
        return self._baseline[1]

    def _score(self, prompt: str, texts: list[str], cancel, calibrated: bool = False) -> np.ndarray:
        check(cancel)
        s = self.backend.score(prompt, texts, cancel=cancel)
        lp = s.logprob - self._calibration(cancel) if calibrated else s.logprob
        return mz.model_distribution(lp, s.n_tokens, self.length_normalise)

    def model_pass(self, x: str, cancel=None, strategy: str | None = None,
                   shared: dict | None = None) -> ModelOutcome:
        """p(y'|x) under a strategy. `shared` (prompt -> (p, seconds)) lets an evaluation run the
        strategies of one query without scoring a prompt twice; the passes and seconds reported
        are still what this strategy costs on its own."""
        strategy = strategy or self.strategy
        if not isinstance(x, str) or not x.strip():
            raise ValueError("the query is empty: type a message to classify")
        t0 = time.perf_counter()
        # Only the prompts that show rated examples need the query's embedding here; the
        # instance rule looks its neighbours up in apply_memory, so vanilla alone costs one pass.
        needs_vec = len(self.index) > 0 and strategy in ("cot", "fot", "consistent")
        qvec = self.query_vector(x) if needs_vec else None
        neighbours = (self.index.nearest(qvec, max(self.params.k, st.FOT_EXAMPLES)) if needs_vec
                      else [])
        examples = [(self.index.instances[nb.index], self.responses[self.index.user_idx[nb.index]])
                    for nb in neighbours]
        shared = {} if shared is None else shared
        used: dict[str, float] = {}   # identical prompts (e.g. CoT with an empty bank) score once
        overhead = time.perf_counter() - t0

        def run(prompt: str) -> np.ndarray:
            if prompt not in shared:
                t = time.perf_counter()
                p = self._score(prompt, self._candidate_texts, cancel, calibrated=self.calibrate)
                shared[prompt] = (p, time.perf_counter() - t)
            used[prompt] = shared[prompt][1]
            return shared[prompt][0]

        def prompt_for(name: str) -> str:
            if name == "vanilla":
                return st.vanilla_prompt(self.responses, x)
            if name == "cot":
                return st.examples_prompt(self.responses, x, examples[:1])
            return st.examples_prompt(self.responses, x, examples[:st.FOT_EXAMPLES])

        if strategy in ("vanilla", "cot", "fot"):
            p = run(prompt_for(strategy))
            choice = int(np.argmax(p))
        elif strategy == "consistent":
            dists = [run(prompt_for(s)) for s in ("vanilla", "cot", "fot")]
            choice = mz.majority_vote([int(np.argmax(d)) for d in dists], dists)
            p = np.mean(dists, axis=0)
        else:  # feedback
            first = run(prompt_for("vanilla"))
            p = run(st.feedback_prompt(self.responses, x, self.responses[int(np.argmax(first))]))
            choice = int(np.argmax(p))
        return ModelOutcome(x, strategy, p, choice, len(used), overhead + sum(used.values()),
                            qvec, neighbours[:self.params.k] if needs_vec else None)

    # ---- the memory's part ------------------------------------------------------------------
    def apply_memory(self, outcome: ModelOutcome, variant: str, cancel=None,
                     shared: dict | None = None) -> Trace:
        if variant not in VARIANTS:
            raise ValueError(f"unknown memory variant {variant!r}")
        t0 = time.perf_counter()
        evidence = self.evidence_rule(cancel) if variant == "evidence" else None
        rule_k = evidence.k if evidence is not None else self.params.k
        if evidence is not None and evidence.index is not self.index and len(self.index):
            # the rule reads the query through the encoder tuned on the bank: its neighbours too
            query_vec = self.query_vector(outcome.query, evidence.index)
            shown = evidence.index.nearest(query_vec, rule_k)
        else:
            if (variant in ("instance", "evidence") and len(self.index)
                    and (outcome.neighbours is None
                         or len(outcome.neighbours) < min(rule_k, len(self.index)))):
                if outcome.query_vec is None:
                    outcome.query_vec = self.query_vector(outcome.query)  # once per outcome
                outcome.neighbours = self.index.nearest(outcome.query_vec, rule_k)
            query_vec = outcome.query_vec
            shown = (outcome.neighbours or [])[:rule_k]
        y_model = self.responses[outcome.model_index]
        passes = outcome.passes
        candidates = self.candidate_set(y_model)
        final = outcome.p
        if variant == "none":
            chosen, rule = y_model, "model"
        elif variant == "paper":
            rule, names = mz.paper_rule(candidates, y_model)
            if rule == "rechoose":
                names = [c for c in names if c in self._pos] or names
                prompt = st.restricted_prompt(names, outcome.query)
                if shared is not None and prompt in shared:
                    q, secs = shared[prompt]
                else:
                    t1 = time.perf_counter()
                    q = self._score(prompt, st.candidate_texts(names), cancel)
                    secs = time.perf_counter() - t1
                    if shared is not None:
                        shared[prompt] = (q, secs)
                t0 -= secs          # a shared re-choice still costs its own time in this trace
                passes += 1
                chosen = names[int(np.argmax(q))]
                final = np.zeros(len(self.responses))
                for name, v in zip(names, q):
                    if name in self._pos:
                        final[self._pos[name]] = v
            else:
                chosen = names[0]
            rule = f"paper-{rule}"
        elif variant == "marginal":
            final = mz.marginal_posterior(outcome.p, mz.marginal_transition(self.counts, self.params.alpha))
            chosen, rule = self.responses[int(np.argmax(final))], "marginal"
        elif variant == "evidence":
            # the query's vector is there whenever the bank has ratings (looked up above); an
            # empty bank's rule needs none, so a new user's first query loads no embedder
            final = evidence.posterior(outcome.p, query_vec, shown)
            chosen, rule = self.responses[int(np.argmax(final))], "evidence"
        else:
            nbs = shown
            idx = np.array([nb.index for nb in nbs], dtype=int)
            sims = np.array([nb.similarity for nb in nbs])
            final = mz.instance_posterior(outcome.p, self.counts, self.index.model_idx[idx],
                                          self.index.user_idx[idx], sims, self.params,
                                          self.index.current[idx])
            chosen, rule = self.responses[int(np.argmax(final))], "instance"
        order = np.argsort(-outcome.p)[:TOP_N]
        top_final = np.argsort(-np.asarray(final))[:10]
        return Trace(
            query=outcome.query, strategy=outcome.strategy, variant=variant,
            model_response=y_model,
            model_top=[(self.responses[i], float(outcome.p[i])) for i in order],
            candidates=candidates, chosen=chosen, rule=rule, passes=passes,
            seconds=outcome.seconds + (time.perf_counter() - t0),
            neighbours=[(self.index.instances[nb.index], self.responses[self.index.user_idx[nb.index]],
                         nb.similarity) for nb in shown],
            scores={self.responses[i]: float(final[i]) for i in top_final if final[i] > 0},
            model_p=[float(v) for v in outcome.p],
            encoder=(f"tuned on {evidence.index.embedder.n_ratings} of your ratings"
                     if evidence is not None and evidence.index is not self.index else ""))

    def candidate_set(self, y_model: str) -> list[tuple[str, int]]:
        """C(y'): what the user meant when this model said y', most frequent first (ties in
        response-set order), from the current model's ratings only."""
        row = self.counts[self._pos[y_model]] if y_model in self._pos else np.zeros(0)
        return [(self.responses[j], int(row[j])) for j in
                sorted(np.flatnonzero(row), key=lambda j: (-row[j], j))]

    # ---- the public calls -------------------------------------------------------------------
    def decide(self, x: str, cancel=None) -> Trace:
        return self.apply_memory(self.model_pass(x, cancel), self.variant, cancel)

    def propose(self, x: str, cancel=None) -> Trace:
        """The model alone (variant "none"): what the Rate view shows for the user to correct."""
        return self.apply_memory(self.model_pass(x, cancel), "none", cancel)

    def nearest_response(self, x: str, cached: bool = True) -> tuple[str | None, float]:
        """The kNN baseline: the user response of the most similar rated instance."""
        if len(self.index) == 0:
            return None, 0.0
        vec = self.query_vector(x) if cached else self.index.encode_query(x)
        nb = self.index.nearest(vec, 1)[0]
        return self.responses[self.index.user_idx[nb.index]], nb.similarity

    def coverage_doubt(self, texts: Sequence[str], cancel=None) -> coverage.Doubt:
        """How unsure the bank is about each query (need 0..1, higher = less sure) and the two
        responses it hesitates between: what the Rate view's coverage order ranks its queue by
        and shows (the rule is `coverage.coverage_doubt`). No model pass: the frozen encoder's
        embeddings of the ratings and of the queries, the latter kept across rankings (the queue
        is ranked again after every rating)."""
        from cm_desktop.cm.evidence import response_text

        if len(self.index) == 0:
            return coverage.Doubt.knowing_nothing(len(texts))
        vecs = self._frozen_vectors(list(texts), cancel)
        response_vecs = self._frozen_vectors([response_text(y) for y in self.responses], cancel)
        return coverage.coverage_doubt(self.index.embeddings, self.index.user_idx, vecs,
                                       response_vecs, len(self.responses))

    def _frozen_vectors(self, texts: list[str], cancel=None) -> np.ndarray:
        """The frozen encoder's embeddings of texts, encoded in chunks (cancel checked between
        them) and kept for the next ranking, up to FROZEN_VECTORS_KEPT texts."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._frozen_vecs]
        for start in range(0, len(missing), ENCODE_CHUNK):
            check(cancel)
            chunk = missing[start:start + ENCODE_CHUNK]
            self._frozen_vecs.update(zip(chunk, self.embedder.encode(chunk)))
        out = np.array([self._frozen_vecs[t] for t in texts], dtype=np.float32)
        while len(self._frozen_vecs) > FROZEN_VECTORS_KEPT:     # oldest first
            self._frozen_vecs.pop(next(iter(self._frozen_vecs)))
        return out
