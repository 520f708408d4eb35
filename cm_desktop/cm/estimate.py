"""The paper's step 1: estimate a bank by running the model on a sample of labelled instances.

Each sampled (x, label) becomes an `estimated` rating (x, y' = the model's answer, y = label) with
the backend's fingerprint. Ratings are written one by one, so an interrupted run keeps what it
did; a rerun skips instances already in the profile (case/whitespace ignored) and resumes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cm_desktop.cancel import check
from cm_desktop.datasets import load_dataset
from cm_desktop.cm.retrieval import normalise_text


@dataclass
class EstimateReport:
    profile: str
    sampled: int
    added: int
    skipped: int          # already in the bank (a resumed run)
    agreement: float      # share of the added ratings where the model already said the label


def sample_records(records: list[dict], proportion: float, seed: int) -> list[dict]:
    if not 0 < proportion <= 1:
        raise ValueError(f"--proportion must be in (0, 1], got {proportion}")
    n = max(1, round(proportion * len(records)))
    return random.Random(seed).sample(records, n)


def ensure_profile(bank, profile: str, labels: list[str], fingerprint: str | None = None):
    """The profile, created from the dataset's sorted labels if missing; an error naming the
    labels when an existing profile lacks some of them."""
    from bank_store import BankError

    try:
        prof = bank.get_profile(profile)
    except BankError:
        return bank.create_profile(profile, sorted(set(labels)),
                                   description="estimated from a labelled dataset",
                                   fingerprint=fingerprint)
    missing = sorted(set(labels) - set(prof.responses))
    if missing:
        raise ValueError(f"profile {profile!r} exists but lacks these dataset labels: "
                         f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    return prof


def estimate_bank(backend, bank, dataset: str | Path, proportion: float, seed: int, profile: str,
                  strategy: str = "vanilla", *, embedder=None,
                  progress: Callable[[int, int], None] | None = None,
                  cancel=None) -> EstimateReport:
    from cm_desktop.cm.engine import CMEngine

    records = load_dataset(dataset)
    ensure_profile(bank, profile, [r["label"] for r in records], backend.fingerprint)
    sample = sample_records(records, proportion, seed)
    done = {normalise_text(r.instance) for r in bank.ratings(profile)}
    todo = [r for r in sample if normalise_text(r["input"]) not in done]
    engine = CMEngine(backend, bank, profile, strategy=strategy, variant="none",
                      embedder=embedder, tune=False)
    added = agree = 0
    for i, rec in enumerate(todo):
        check(cancel)
        trace = engine.propose(rec["input"], cancel)
        # with what the model believed, for the evidence rule's tuning
        bank.add_rating(profile, rec["input"], trace.model_response, rec["label"],
                        source="estimated", strategy=strategy, fingerprint=backend.fingerprint,
                        model_distribution=trace.model_p)
        added += 1
        agree += trace.model_response == rec["label"]
        if progress:
            progress(i + 1, len(todo))
    return EstimateReport(profile, len(sample), added, len(sample) - len(todo),
                          agree / added if added else 0.0)
