"""The baselines CM is measured against, on the same sentence embeddings as its retrieval.

- nearest neighbour: the user response of the most similar rated instance;
- logistic regression on the embeddings (the standard few-shot protocol for sentence encoders):
  multinomial, L2, `C` fixed in advance (not tuned on test data), trained on the bank's (x, y).

scikit-learn is imported inside `fit_logreg`, so the app does not pay for it at start-up.
"""

from __future__ import annotations

import numpy as np

LOGREG_C = 10.0   # inverse L2 strength, fixed before any measurement (never tuned on test data)


def one_blas_thread():
    """A context in which numpy's and scikit-learn's BLAS use one thread.

    The bank's matrices are small (ratings x 384), so a second BLAS thread gains little; beside
    llama.cpp's threads or any other busy process it spins for a core it cannot get. Measured on
    2 cores at load 6-8: building the evidence rule on 100 banking77 ratings took 18.8-20.1 s
    with OpenBLAS's 2 threads and 0.8-1.1 s with one (benchmarks/evidence_bench.py).
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def nearest_neighbour_predict(bank_vecs: np.ndarray, bank_labels: np.ndarray,
                              query_vecs: np.ndarray) -> np.ndarray:
    """Label of the most similar bank row for each query (rows L2-normalised: dot = cosine)."""
    if len(bank_vecs) == 0:
        raise ValueError("nearest neighbour needs at least one rated instance")
    sims = np.asarray(query_vecs, dtype=np.float32) @ np.asarray(bank_vecs, dtype=np.float32).T
    return np.asarray(bank_labels)[sims.argmax(axis=1)]


# (vecs, labels, weight): rows a classifier trains on besides the bank's, each `weight` examples
ExtraRows = tuple[np.ndarray, np.ndarray, float]


def fit_logreg(bank_vecs: np.ndarray, bank_labels: np.ndarray, n_classes: int,
               c: float = LOGREG_C, always: ExtraRows | None = None):
    """A fitted classifier: query vectors -> (n_queries, n_classes) class probabilities, classes
    never rated at 0. One class in the bank: it gets probability 1 (nothing to separate).
    always: (vecs, labels, weight) trained on too, each row counting as `weight` examples (the
    responses' own texts)."""
    sample_weight = None
    if always is not None:
        extra_vecs, extra_labels, weight = always
        sample_weight = np.concatenate([np.ones(len(bank_labels)),
                                        np.full(len(extra_labels), float(weight))])
        bank_vecs = np.vstack([bank_vecs, extra_vecs])
        bank_labels = np.concatenate([bank_labels, extra_labels])
    labels = np.asarray(bank_labels, dtype=int)
    classes = np.unique(labels)
    if len(classes) == 1:
        def only(query_vecs: np.ndarray) -> np.ndarray:
            out = np.zeros((len(query_vecs), n_classes), dtype=np.float64)
            out[:, classes[0]] = 1.0
            return out
        return only
    import warnings

    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=2000)
    with warnings.catch_warnings(), one_blas_thread():
        # a small bank has nearly as many classes as rows: sklearn then wonders whether y is a
        # regression target; it is not
        warnings.simplefilter("ignore", UserWarning)
        clf.fit(np.asarray(bank_vecs, dtype=np.float64), labels, sample_weight=sample_weight)

    def proba(query_vecs: np.ndarray) -> np.ndarray:
        out = np.zeros((len(query_vecs), n_classes), dtype=np.float64)
        with one_blas_thread():
            out[:, clf.classes_] = clf.predict_proba(np.asarray(query_vecs, dtype=np.float64))
        return out
    return proba


def logreg_proba(bank_vecs: np.ndarray, bank_labels: np.ndarray, query_vecs: np.ndarray,
                 n_classes: int, c: float = LOGREG_C,
                 always: ExtraRows | None = None) -> np.ndarray:
    """(n_queries, n_classes) class probabilities from a classifier fitted on the bank."""
    return fit_logreg(bank_vecs, bank_labels, n_classes, c, always)(query_vecs)


def logreg_predict(bank_vecs, bank_labels, query_vecs, n_classes: int,
                   c: float = LOGREG_C) -> np.ndarray:
    return logreg_proba(bank_vecs, bank_labels, query_vecs, n_classes, c).argmax(axis=1)


def logreg_out_of_fold(vecs: np.ndarray, labels: np.ndarray, n_classes: int, folds: int = 5,
                       seed: int = 0, c: float = LOGREG_C,
                       always: ExtraRows | None = None) -> np.ndarray:
    """Each rated instance's class probabilities from a classifier trained without it (k-fold
    cross-fitting): what the bank's classifier would have said had the rating been held out.
    always: as in `fit_logreg`, in every fold's training set and never held out."""
    n = len(labels)
    out = np.zeros((n, n_classes), dtype=np.float64)
    if n < 2:
        return out
    folds = min(folds, n)
    fold_of = np.random.default_rng(seed).permutation(n) % folds
    for f in range(folds):
        held = fold_of == f
        out[held] = logreg_proba(vecs[~held], labels[~held], vecs[held], n_classes, c, always)
    return out
