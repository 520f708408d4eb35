"""Estimation pieces that need no model: sampling and the profile check."""

from __future__ import annotations

import pytest

from cm_desktop.cm.estimate import ensure_profile, sample_records


def test_sample_is_reproducible_and_sized():
    recs = [{"input": str(i), "label": "a"} for i in range(200)]
    a = sample_records(recs, 0.05, seed=40)
    assert len(a) == 10 and a == sample_records(recs, 0.05, seed=40)
    assert a != sample_records(recs, 0.05, seed=41)
    assert len(sample_records(recs, 0.0001, seed=1)) == 1        # never an empty sample
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match="proportion"):
            sample_records(recs, bad, seed=1)


def test_ensure_profile_creates_from_sorted_labels_or_names_missing_ones(bank):
    prof = ensure_profile(bank, "new", ["b", "a", "b", "c"])
    assert list(prof.responses) == ["a", "b", "c"]
    assert list(ensure_profile(bank, "new", ["a", "c"]).responses) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="lacks these dataset labels: d"):
        ensure_profile(bank, "new", ["a", "d"])
    assert bank.rating_count("new") == 0
