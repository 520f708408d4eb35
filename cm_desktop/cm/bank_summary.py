"""What the Bank view shows, read from the bank in one go, and the removal of whole bank entries.

No Qt here: the desktop app runs these as background ops; a script can call them directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cm_desktop.cancel import check


@dataclass(frozen=True)
class BankEntry:
    model_response: str
    user_response: str
    count: int
    share: float  # of the ratings whose model response is this one
    agrees: bool  # y' == y: the model already gave what the user meant


@dataclass
class BankSnapshot:
    profile: str
    responses: list[str]
    entries: list[BankEntry]
    matrix: Any  # bank_store.TransitionMatrix
    stats: dict = field(default_factory=dict)


def load_snapshot(bank, profile: str, cancel=None) -> BankSnapshot:
    """The profile's entries, transition matrix and stats, all from one read transaction."""
    # One read transaction: the table, the heatmap and the stats describe the same bank state
    # even while a rating is being written.
    with bank.transaction(write=False):
        prof = bank.get_profile(profile)
        counts = bank.counts(profile)
        check(cancel)
        matrix = bank.transition_matrix(profile)
        stats = bank.stats(profile)
    check(cancel)
    totals: dict[str, int] = {}
    for (model_response, _user), n in counts.items():
        totals[model_response] = totals.get(model_response, 0) + int(n)
    order = {r: i for i, r in enumerate(prof.responses)}
    # Response-set order first, raw model responses after; within one model response, biggest first.
    keys = sorted(counts, key=lambda k: (k[0] not in order, order.get(k[0], 0), k[0], -counts[k],
                                         order.get(k[1], 1 << 30), k[1]))
    entries = [
        BankEntry(y_model, y_user, int(counts[(y_model, y_user)]),
                  counts[(y_model, y_user)] / totals[y_model] if totals[y_model] else 0.0,
                  y_model == y_user)
        for (y_model, y_user) in keys
    ]
    return BankSnapshot(profile=profile, responses=list(prof.responses), entries=entries,
                        matrix=matrix, stats=stats)


class RemovedRatings(list):
    """The ratings remove_pairs removed, and the model's distributions stored with them (rating
    id -> vector): an undo puts both back with bank.restore_ratings(profile, r, r.distributions)."""

    def __init__(self, ratings=(), distributions: dict | None = None) -> None:
        super().__init__(ratings)
        self.distributions = dict(distributions or {})


def remove_pairs(bank, profile: str, pairs: list[tuple[str, str]]) -> RemovedRatings:
    """Remove whole bank entries, all or none (one transaction); returns the removed ratings."""
    removed = []
    with bank.transaction(write=True):
        ids, stored = bank.model_distributions(profile)
        for model_response, user_response in pairs:
            removed.extend(bank.remove_pair(profile, model_response, user_response))
    row = {rid: i for i, rid in enumerate(ids)}
    return RemovedRatings(removed, {r.id: stored[row[r.id]] for r in removed if r.id in row})
