"""The bank across models: whose y' each rating holds, and rebasing onto the current model.

A rating's instance x and the user's response y belong to the user; its model response y'
belongs to the model that gave it, named by the rating's fingerprint. The counts T(y|y') that
CM applies to a model's answer are only meaningful for that model's y', so:

- `is_current(rating, fingerprint)` is THE rule for which ratings' y' statistics may steer the
  model `fingerprint`: its own ratings, and ratings made here without a fingerprint (the app
  records one with every rating; only banks built by hand lack it). Imported ratings without a
  fingerprint (the paper's files: their y' came from GPT-3.5) and any other fingerprint are
  another model's.
- `rebase` asks the current model again about every rated instance of another model and stores
  the new y' beside the user's y as a new rating with the current fingerprint; the old ratings
  are kept, still marked as the other model's. Ratings without an instance (paper files) cannot
  be asked about again and stay another model's.

Resuming needs no bookkeeping table: another model's ratings are matched to current-model
ratings by (instance, y) as multisets; those left over are still to do. A rebase that was
cancelled or killed therefore restarts where it stopped, and one that finished has nothing to do.
The same match decides what CM uses (`counted`): a rebased (x, y) counts once, as the current
model's rating, not again as the old model's neighbour vote.
Only the public bank API is used (one `add_ratings` transaction per batch).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .records import Rating, normalise_response

UNKNOWN_MODEL = "unknown model (imported without a fingerprint)"
BATCH = 8   # instances asked per transaction: a kill loses at most this many answers


def is_current(rating_fingerprint: str | None, source: str, fingerprint: str | None) -> bool:
    """May this rating's y' statistics steer the model `fingerprint`? (None: no model known,
    every rating counts, as before fingerprints were compared.)"""
    if fingerprint is None:
        return True
    if rating_fingerprint is None:
        return source != "imported"
    return rating_fingerprint == fingerprint


def model_of(r: Rating) -> str:
    return r.fingerprint if r.fingerprint is not None else (
        UNKNOWN_MODEL if r.source == "imported" else "this app (no fingerprint recorded)")


@dataclass
class ModelCounts:
    """How a profile's ratings split by the model that gave their y'."""
    current: int = 0
    other: int = 0
    by_model: dict[str, int] = field(default_factory=dict)   # other models only
    to_rebase: int = 0          # other-model ratings with an instance, not rebased yet
    without_instance: int = 0   # other-model ratings that cannot be rebased (paper files)
    rebased: int = 0            # other-model ratings a current-model rating now stands for

    def to_dict(self) -> dict:
        return {"current": self.current, "other": self.other, "by_model": dict(self.by_model),
                "to_rebase": self.to_rebase, "without_instance": self.without_instance,
                "rebased": self.rebased}


def _key(r: Rating) -> tuple[str, str]:
    return normalise_response(r.instance), r.user_response


def _split(ratings: Sequence[Rating], fingerprint: str | None):
    current = [r for r in ratings if is_current(r.fingerprint, r.source, fingerprint)]
    other = [r for r in ratings if not is_current(r.fingerprint, r.source, fingerprint)]
    return current, other


def _rebased(current: Sequence[Rating], other: Sequence[Rating]) -> list[bool]:
    """For each other-model rating: has a current-model rating of the same (x, y) replaced it?
    Matched as multisets, oldest first: an (x, y) rated twice needs two current ratings."""
    have = Counter(_key(r) for r in current if r.instance.strip())
    out = []
    for r in other:
        k = _key(r)
        hit = bool(r.instance.strip()) and have[k] > 0
        if hit:
            have[k] -= 1
        out.append(hit)
    return out


def _pending(current: Sequence[Rating], other: Sequence[Rating]) -> list[Rating]:
    """Other-model ratings with an instance that no current-model rating of the same (x, y)
    answers yet (oldest first)."""
    return [r for r, done in zip(other, _rebased(current, other))
            if not done and r.instance.strip()]


def counted(ratings: Sequence[Rating], fingerprint: str | None) -> list[tuple[Rating, bool]]:
    """The ratings CM uses, each rated (x, y) once, with whether its y' is the current model's.

    Every current-model rating counts. Another model's rating counts (its (x, y) only: a
    neighbour's vote, never a y' statistic) until a rebase has stored the current model's rating
    of the same (x, y) beside it: from then on the new rating stands for it, so the user's
    answer is not heard twice. Another model's rating without an instance (a paper file's) has
    no x to be near and no y' that may steer: it does not count at all. Order is kept."""
    is_cur = [is_current(r.fingerprint, r.source, fingerprint) for r in ratings]
    other_at = [i for i, cur in enumerate(is_cur) if not cur]
    replaced = _rebased([r for r, cur in zip(ratings, is_cur) if cur],
                        [ratings[i] for i in other_at])
    dropped = {i for i, done in zip(other_at, replaced) if done}
    return [(r, cur) for i, (r, cur) in enumerate(zip(ratings, is_cur))
            if cur or (i not in dropped and r.instance.strip())]


def model_counts(bank, profile: str, fingerprint: str | None) -> ModelCounts:
    with bank.transaction(write=False):
        ratings = bank.ratings(profile)
    current, other = _split(ratings, fingerprint)
    by_model = Counter(model_of(r) for r in other)
    return ModelCounts(len(current), len(other), dict(by_model), len(_pending(current, other)),
                       sum(1 for r in other if not r.instance.strip()),
                       sum(_rebased(current, other)))


def pending(bank, profile: str, fingerprint: str) -> list[Rating]:
    with bank.transaction(write=False):
        ratings = bank.ratings(profile)
    return _pending(*_split(ratings, fingerprint))


@dataclass
class RebaseReport:
    profile: str
    fingerprint: str
    instances: int = 0          # distinct instances asked this run
    added: int = 0              # new current-model ratings
    remaining: int = 0          # other-model ratings still to do (after a cancel)
    without_instance: int = 0   # other-model ratings that cannot be rebased
    changed: int = 0            # new ratings whose y' differs from the old one
    cancelled: bool = False
    seconds: float = 0.0


def pending_groups(bank, profile: str, fingerprint: str) -> list[list[Rating]]:
    """The ratings still to rebase, grouped by instance (one model call per group), oldest first."""
    groups: dict[str, list[Rating]] = defaultdict(list)
    for r in pending(bank, profile, fingerprint):
        groups[normalise_response(r.instance)].append(r)
    return list(groups.values())


def rebased_ratings(olds: Sequence[Rating], y_new: str, fingerprint: str,
                    strategy: str | None) -> list[dict]:
    """New ratings for one instance: the current model's y' beside each old rating's y (and its
    source), to add with bank.add_ratings."""
    return [{"instance": old.instance, "model_response": y_new,
             "user_response": old.user_response, "source": old.source,
             "strategy": strategy, "fingerprint": fingerprint} for old in olds]


def rebase(bank, profile: str, fingerprint: str, respond: Callable[[str], Any], *,
           strategy: str | None = None, should_stop: Callable[[], bool] | None = None,
           progress: Callable[[int, int], None] | None = None,
           batch: int = BATCH) -> RebaseReport:
    """Ask `respond(x) -> y'` (the current model) about every instance still to rebase and store
    (x, y', y) with `fingerprint`, keeping each old rating's y and source. `respond` may give
    (y', p) instead: p, the model's distribution over the profile's responses, is stored with
    the new ratings as add_rating stores it.

    One model call per distinct instance; answers are written every `batch` instances in one
    transaction each. `should_stop()` is checked between instances: a stop keeps what was
    written and reports how much is left (a later call resumes)."""
    if not isinstance(fingerprint, str) or not fingerprint:
        raise ValueError("rebase needs the current model's fingerprint")
    t0 = time.perf_counter()
    groups = pending_groups(bank, profile, fingerprint)
    report = RebaseReport(profile, fingerprint,
                          without_instance=model_counts(bank, profile, fingerprint).without_instance)
    buffered: list[dict] = []
    distributions: list = []

    def flush() -> None:
        if buffered:
            report.added += bank.add_ratings(profile, buffered, distributions)
            buffered.clear()
            distributions.clear()

    done = 0
    try:
        for olds in groups:
            if should_stop is not None and should_stop():
                report.cancelled = True
                break
            answer = respond(olds[0].instance)
            y_new, p = answer if isinstance(answer, tuple) else (answer, None)
            buffered.extend(rebased_ratings(olds, y_new, fingerprint, strategy))
            distributions.extend([p] * len(olds))
            report.changed += sum(normalise_response(y_new) != normalise_response(o.model_response)
                                  for o in olds)
            done += 1
            report.instances = done
            if done % batch == 0:
                flush()
            if progress:
                progress(done, len(groups))
    finally:   # answers already given are kept even when the model fails or is cancelled
        flush()
    report.remaining = len(pending(bank, profile, fingerprint))
    report.seconds = time.perf_counter() - t0
    return report


def file_model_note(parsed, fingerprint: str | None) -> str | None:
    """For an import preview: one sentence when a bank file's ratings came from another model
    (`parsed` is a formats.ParsedBankFile), else None."""
    if parsed.format == "paper":
        return ("this is a paper file: its model responses came from another model (the "
                "paper's) and it has no queries, so it cannot be rebased; its ratings are kept "
                "as another model's and do not steer the current model")
    if fingerprint is None:
        return None
    other = [r for r in parsed.ratings if not is_current(r.fingerprint, r.source, fingerprint)]
    if not other:
        return None
    models = sorted({model_of(r) for r in other})
    shown = ", ".join(models[:2]) + (f" and {len(models) - 2} more" if len(models) > 2 else "")
    can = sum(1 for r in other if r.instance.strip())
    return (f"{len(other)} of the file's {len(parsed.ratings)} ratings were made with another "
            f"model ({shown}): they will not steer the current model until rebased "
            f"({can} have a query and can be)")
