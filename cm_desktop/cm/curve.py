"""Learning curves by simulation: how many ratings until CM gets this user?

A simulated user rates queries from a pool in a given order (the label is what they meant, the
model's answer is y'); after each bank size every method answers held-out test queries. The model's
p(y'|x) does not depend on the bank under the vanilla prompt, so it is computed once per pool and
test query (`pass_cache`) and every size, order and method reuses it: a curve costs one model pass
per query, plus the embeddings.

Orders: `random` (a seeded shuffle of the pool) and `coverage` (the app's coverage-driven queue:
the next query is the one where the bank's classifier hesitates most, `coverage.coverage_needs`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from cm_desktop.cancel import check
from cm_desktop.cm import coverage
from cm_desktop.cm import marginalize as mz
from cm_desktop.cm.evaluate import macro_f1, tune_params
from cm_desktop.cm.retrieval import RatingIndex, normalise_text

METHODS = ("model", "knn", "logreg", "logreg-tuned", "cm-paper", "cm-marginal", "cm-instance",
           "cm-evidence")
ORDERS = ("random", "coverage")
MAX_SIZES = 20
MAX_REPEATS = 20


def _dedupe(records: Sequence[dict], exclude: set[str]) -> list[dict]:
    seen, out = set(exclude), []
    for rec in records:
        key = normalise_text(rec["input"])
        if key not in seen:
            seen.add(key)
            out.append(rec)
    return out


def split_records(pool_records: Sequence[dict], test_records: Sequence[dict] | None, *,
                  limit: int | None, test_limit: int | None, seed: int,
                  exclude: Sequence[str] = ()) -> tuple[list[dict], list[dict]]:
    """(pool, test). With no separate test file the pool file is split into two disjoint halves
    by `seed`. Inputs are deduplicated (case/whitespace ignored); test inputs that occur in the
    pool or in `exclude` (the profile's real bank) are dropped."""
    banned = {normalise_text(x) for x in exclude}
    pool = _dedupe(pool_records, banned)
    random.Random(seed).shuffle(pool)
    if test_records is None:
        half = len(pool) // 2
        pool, test = pool[:half], pool[half:]
    else:
        pool_keys = {normalise_text(r["input"]) for r in pool}
        test = _dedupe(test_records, banned | pool_keys)
        random.Random(seed + 1).shuffle(test)
    pool = pool[:limit] if limit else pool
    test = test[:test_limit] if test_limit else test
    if not pool or not test:
        raise ValueError("the pool or the test set is empty after deduplication")
    return pool, test


@dataclass
class CurveInputs:
    """Everything a curve needs, model passes and embeddings already computed."""
    responses: list[str]
    pool_texts: list[str]
    pool_users: np.ndarray      # (n_pool,) index of the label (what the user meant)
    p_pool: np.ndarray          # (n_pool, |R|) p(y'|x)
    e_pool: np.ndarray          # (n_pool, d) unit embeddings
    test_users: np.ndarray
    p_test: np.ndarray
    e_test: np.ndarray
    e_responses: np.ndarray | None = None   # (|R|, d) embeddings of the responses' own text
    test_texts: list[str] | None = None     # the test queries (a tuned encoder reads them again)

    @property
    def pool_model(self) -> np.ndarray:
        """y' the simulated user sees when rating: the model's answer (its argmax)."""
        return self.p_pool.argmax(axis=1)


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise ValueError(f"--sizes: comma-separated whole numbers, got {text!r}") from None
    if not sizes or sizes[0] < 1 or len(sizes) > MAX_SIZES:
        raise ValueError(f"--sizes: 1 to {MAX_SIZES} sizes, each at least 1")
    return sizes


def rating_orders(data: CurveInputs, orders: Sequence[str], size: int, seed: int,
                  window: int | None = coverage.RANK_LIMIT,
                  cancel=None) -> dict[str, np.ndarray]:
    """Pool indices in the order the simulated user rates them, for each order. window: the
    coverage order picks the neediest of the next `window` queries of the user's queue, as the
    Rate view ranks the head of its queue (None: of all remaining queries)."""
    n = len(data.pool_users)
    # the user's queue: the pool in an order of its own. Random order rates it as it comes; the
    # coverage order starts at its head and then picks within the window as it goes, so the two
    # differ only by the coverage pick (window 1: the same order).
    queue = np.random.default_rng(seed).permutation(n)
    out = {}
    for name in orders:
        if name == "random":
            out[name] = queue[:size]
        elif name == "coverage":
            picked = coverage.coverage_order(data.e_pool[queue], data.pool_users[queue],
                                             data.e_responses, len(data.responses), size,
                                             window=window, first=0, cancel=cancel)
            out[name] = queue[picked]
        else:
            raise ValueError(f"unknown order {name!r}; choose from {', '.join(ORDERS)}")
    return out


def _paper_predictions(p: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The paper rule; its re-choice among C(y') uses the first pass's scores restricted to C
    (the engine asks the model again with a prompt listing only C: a second pass per query and
    size, which a curve cannot afford)."""
    y_model = p.argmax(axis=1)
    out = y_model.copy()
    for j, ym in enumerate(y_model):
        cands = np.flatnonzero(counts[ym] > 0)
        if len(cands) == 1:
            out[j] = cands[0]
        elif len(cands) > 1:
            out[j] = cands[int(np.argmax(p[j, cands]))]
    return out


def _nearest(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, sims.shape[1])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    top_sims = np.take_along_axis(sims, top, axis=1)
    order = np.argsort(-top_sims, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_sims, order, axis=1)


def predict_at(data: CurveInputs, bank: np.ndarray, methods: Sequence[str], embedder=None,
               cancel=None) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Each method's answers on the test queries with `bank` (pool indices) rated, and the
    parameters each CM rule tuned on that bank (leave-one-out over its ratings only)."""
    from cm_desktop.cm.evaluate import counts_matrix
    from cm_desktop.cm.evidence import EvidenceRule

    r = len(data.responses)
    bm, bu = data.pool_model[bank], data.pool_users[bank]
    e_bank = data.e_pool[bank]
    counts = np.zeros((r, r))
    np.add.at(counts, (bm, bu), 1.0)
    sims = data.e_test @ e_bank.T
    preds: dict[str, np.ndarray] = {}
    tuned: dict[str, dict] = {}
    tuned_once: list = []

    def tuned_view():
        """(tuned encoder, test vectors, response vectors) through the encoder tuned on this bank,
        None where the engine would not tune (encoder_tuning.should_tune); tuned once per call."""
        if not tuned_once:
            tuned_once.append(_tuned_view(data, bank, embedder, cancel))
        return tuned_once[0]

    for method in methods:
        check(cancel)
        if method == "model":
            preds[method] = data.p_test.argmax(axis=1)
        elif method == "knn":
            preds[method] = bu[sims.argmax(axis=1)]
        elif method == "logreg":
            from cm_desktop.cm.baselines import logreg_predict
            preds[method] = logreg_predict(e_bank, bu, data.e_test, r)
        elif method == "logreg-tuned":
            # the baseline on the encoder cm-evidence reads through (the frozen one below the
            # tuning point): what the tuning alone is worth, without CM
            from cm_desktop.cm.baselines import logreg_predict
            through = tuned_view()
            e_b, e_t = (e_bank, data.e_test) if through is None else \
                (through[0].encode([data.pool_texts[i] for i in bank]), through[1])
            preds[method] = logreg_predict(e_b, bu, e_t, r)
        elif method == "cm-paper":
            preds[method] = _paper_predictions(data.p_test, counts)
        elif method == "cm-marginal":
            t = mz.marginal_transition(counts, mz.CMParams().alpha)
            preds[method] = mz.marginal_posterior(data.p_test, t).argmax(axis=1)
        elif method in ("cm-instance", "cm-evidence"):
            # the model's p for each rated query: what the Rate view stores beside a rating
            index = RatingIndex.from_arrays(data.responses, [data.pool_texts[i] for i in bank],
                                            bm, bu, e_bank, embedder, model_p=data.p_pool[bank])
            assert np.array_equal(counts, counts_matrix(index))
            if method == "cm-instance":
                params = tune_params(index, counts).params if len(bank) >= 5 else mz.CMParams()
                nb, nb_s = _nearest(sims, params.k)
                preds[method] = np.array([
                    int(np.argmax(mz.instance_posterior(data.p_test[j], counts, bm[nb[j]], bu[nb[j]],
                                                        nb_s[j], params)))
                    for j in range(len(data.test_users))])
            else:   # the engine's own rule, through the encoder tuned on the bank as there
                e_test, e_responses, rule_sims = data.e_test, data.e_responses, sims
                through = tuned_view()
                if through is not None:
                    tuned_encoder, e_test, e_responses = through
                    index = index.with_embedder(tuned_encoder)
                    rule_sims = e_test @ index.embeddings.T
                rule = EvidenceRule(index, counts, response_vecs=e_responses)
                params = rule.params
                nb, nb_s = _nearest(rule_sims, params.k)
                preds[method] = rule.posteriors(data.p_test, e_test, nb, nb_s).argmax(axis=1)
            tuned[method] = params.to_dict()
        else:
            raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return preds, tuned


def _tuned_view(data: CurveInputs, bank: np.ndarray, embedder, cancel):
    from cm_desktop.cm import encoder_tuning as et
    from cm_desktop.cm.evidence import response_text

    if not et.should_tune(embedder, len(bank), len(data.responses)):
        return None
    if data.test_texts is None:
        raise ValueError("a curve that tunes the encoder needs the test queries' texts")
    tuned = et.tune_encoder(embedder, [data.pool_texts[i] for i in bank], data.pool_users[bank],
                            len(data.responses), cancel=cancel)
    return (tuned, tuned.encode(data.test_texts),
            tuned.encode([response_text(y) for y in data.responses]))


def run_curve(data: CurveInputs, sizes: Sequence[int], orders: Sequence[str], seed: int,
              methods: Sequence[str] = METHODS, *, repeats: int = 1,
              window: int | None = coverage.RANK_LIMIT,
              embedder=None, progress: Callable[[int, int], None] | None = None,
              cancel=None) -> dict:
    """{"rows": [{"size", "order", "method", "accuracy", "accuracy_sd", "macro_f1", "repeats"}],
    "tuned": [...]}.

    repeats: simulated users, each rating in the order drawn with seed, seed + 1, ...; a row's
    accuracy and macro-F1 are their means and accuracy_sd the spread between them (0 with one).
    The pool and the test set stay the same, so the spread is that of the rating order (which
    queries were rated, and the tuning on them), not of the test sample.
    Sizes larger than the pool are dropped (said in "skipped_sizes")."""
    if not 1 <= repeats <= MAX_REPEATS:
        raise ValueError(f"repeats: 1 to {MAX_REPEATS}")
    n_pool = len(data.pool_users)
    usable = [s for s in sizes if s <= n_pool]
    gold = data.test_users
    labels = np.asarray(data.responses)
    acc: dict[tuple, list[tuple[float, float]]] = {}
    tuned_rows, first_orders = [], {}
    steps, done = len(usable) * len(orders) * repeats, 0
    for rep in range(repeats):
        order_idx = (rating_orders(data, orders, max(usable), seed + rep, window, cancel)
                     if usable else {})
        if rep == 0:
            first_orders = order_idx
        for order in orders:
            for size in usable:
                preds, tuned = predict_at(data, order_idx[order][:size], methods, embedder, cancel)
                for method in methods:
                    pred = preds[method]
                    acc.setdefault((size, order, method), []).append(
                        (float(np.mean(pred == gold)),
                         macro_f1(list(labels[gold]), list(labels[pred]))))
                for method, params in tuned.items():
                    tuned_rows.append({"size": size, "order": order, "method": method,
                                       "repeat": rep, "params": params})
                done += 1
                if progress:
                    progress(done, steps)
    rows = []   # in the loops' order: the first repeat inserted every key
    for (size, order, method), runs in acc.items():
        a = np.array([r[0] for r in runs])
        rows.append({"size": size, "order": order, "method": method,
                     "accuracy": float(a.mean()),
                     "accuracy_sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
                     "macro_f1": float(np.mean([r[1] for r in runs])), "repeats": len(runs)})
    return {"rows": rows, "tuned": tuned_rows,
            "skipped_sizes": [s for s in sizes if s > n_pool],
            "orders": {k: v.tolist() for k, v in first_orders.items()}}
