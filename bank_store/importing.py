"""Importing a bank file: plan (validate against the bank, change nothing), then apply.

`plan_import` validates everything against the bank and changes nothing; `apply_import`
re-plans under the write lock and applies it in one transaction, so any error leaves the bank
exactly as it was. A replace of a non-empty profile backs up the bank inside that same write
lock (connection.destructive_transaction): a rating another writer committed before the lock
is in the backup, never lost unseen. `ImportPlan.summary()` is the one text that describes a
plan (the CLI prints it, the import dialog shows it).

Paper files carry no instances, counts or times: each distinct (y', y) pair becomes one rating
with an empty instance and source ``imported``; a merge skips pairs the profile already holds
as such instance-less imported ratings, so importing the same paper file twice changes nothing.
Keys and values are matched to the response set case-insensitively after whitespace
normalisation; unmatched ones are kept as raw responses and counted in the plan. A paper file
into a new profile needs the response set given (the format has none). `on_mismatch` applies to
native files, whose response set may differ from the profile's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .errors import BankError, ProfileNotFoundError, ResponseSetMismatchError
from .reading import ParsedBankFile, read_bank_file
from .rebase import file_model_note
from .records import (Profile, Rating, check_profile_name, collapse_whitespace,
                      normalise_response, validate_responses)

LIST_PREVIEW = 12  # names shown per list in a plan's summary before "and N more"


@dataclass
class ImportPlan:
    parsed: ParsedBankFile
    profile: str
    mode: str
    on_mismatch: str
    create_profile: bool
    responses: tuple[str, ...]            # the profile's response set after the import
    responses_added: list[str]            # by on_mismatch="union"
    new: list[Rating]
    duplicates: int
    removed: int                          # ratings a replace removes first
    mismatch: tuple[list[str], list[str]] | None   # (only in file, only in profile)
    matched_keys: int = 0
    total_keys: int = 0
    matched_values: int = 0
    total_values: int = 0
    raw_keys: list[str] = field(default_factory=list)
    raw_values: list[str] = field(default_factory=list)
    given_responses: tuple[str, ...] | None = None
    guidance: dict[str, str] = field(default_factory=dict)  # what the import sets

    responses_from: str = ""   # where a new profile's response set comes from, in words
    needs_choice: bool = False  # the response sets differ and no keep/union choice was made

    def summary(self) -> str:
        """The one text describing this plan (the CLI prints it, the import dialog shows it;
        plain text: nothing from the file is markup)."""
        p = self.parsed
        lines = [f"File: {p.path}", f"Format: {p.format}"]
        if self.create_profile:
            lines.append(f"Into: a new profile {self.profile!r} with {len(self.responses)} "
                         "responses" + (f" ({self.responses_from})" if self.responses_from
                                        else ""))
        else:
            lines.append(f"Into: profile {self.profile!r} ({self.mode})")
        if self.removed:
            lines.append(f"Replace: the profile's {self.removed} ratings are removed first "
                         "(a backup is taken)")
        lines.append(f"New ratings: {len(self.new)}")
        if self.guidance:
            lines.append(f"Guidance: {len(self.guidance)} responses get the file's guidance")
        with_p = len(_with_distributions(self))
        if with_p:
            lines.append(f"Model distributions: {with_p} of the new ratings come with one")
        lines.append(f"Duplicates skipped: {self.duplicates}")
        lines.append(f"Model responses in the response set: {self.matched_keys} of "
                     f"{self.total_keys}")
        lines.append(f"User responses in the response set: {self.matched_values} of "
                     f"{self.total_values}")
        if self.raw_keys:
            lines.append("Model responses outside the response set, kept as raw "
                         f"({len(self.raw_keys)}):")
            lines.append(_names(self.raw_keys))
        if self.raw_values:
            lines.append("User responses outside the response set, kept but not in the matrix "
                         f"({len(self.raw_values)}):")
            lines.append(_names(self.raw_values))
        if self.mismatch:
            only_file, only_profile = self.mismatch
            lines.append("")
            lines.append("The file's response set differs from the profile's:")
            lines.append(f"  only in the file ({len(only_file)}):")
            lines.extend([_names(only_file)] if only_file else [])
            lines.append(f"  only in the profile ({len(only_profile)}):")
            lines.extend([_names(only_profile)] if only_profile else [])
            if self.needs_choice:
                lines.append("Choose: keep the profile's set, use the union, or don't import.")
            elif self.responses_added:
                lines.append(f"Union: {len(self.responses_added)} responses are added to the "
                             "profile.")
            else:
                lines.append("Keep: the profile's response set stays as it is.")
        return "\n".join(lines)


@dataclass
class ImportReport:
    plan: ImportPlan
    added: int
    applied: bool
    backup: Path | None = None

    def summary(self) -> str:
        head = "dry run, nothing changed:" if not self.applied else (
            f"imported {self.added} ratings into {self.plan.profile!r}")
        tail = f"\nbackup taken first: {self.backup}" if self.backup else ""
        return f"{head}\n{self.plan.summary()}{tail}"


def _names(items, limit: int = LIST_PREVIEW) -> str:
    """One response per indented line (responses may hold commas), at most `limit` of them."""
    items = list(items)
    lines = [f"    {item}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"    … and {len(items) - limit} more")
    return "\n".join(lines)


def _preview(items: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(repr(s) for s in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def _match(text: str, members: dict[str, str]) -> tuple[str, bool]:
    hit = members.get(normalise_response(text))
    return (hit, True) if hit is not None else (collapse_whitespace(text), False)


def plan_import(bank, parsed: ParsedBankFile, profile: str, *, mode: str = "merge",
                on_mismatch: str = "error",
                responses: Sequence[str] | None = None) -> ImportPlan:
    """What an import would do; validates against the bank and changes nothing.

    `responses` is the response set for a profile that does not exist yet (required for a
    paper file, whose format carries none)."""
    if mode not in ("merge", "replace"):
        raise BankError(f"unknown import mode {mode!r} (use merge or replace)")
    if on_mismatch not in ("error", "keep", "union"):
        raise BankError(f"unknown on_mismatch {on_mismatch!r} (use error, keep or union)")
    given = validate_responses(responses) if responses is not None else None
    with bank.transaction(write=False):
        try:
            existing: Profile | None = bank.get_profile(profile)
        except ProfileNotFoundError:
            existing = None
        if existing is not None:
            held = bank.ratings(profile) if mode == "merge" else []
            removed = 0 if mode == "merge" else bank.rating_count(profile)
        else:
            held, removed = [], 0
    mismatch = None
    added_responses: list[str] = []
    if existing is not None:
        final = existing.responses
        if parsed.format == "native" and set(parsed.responses) != set(final):
            only_file = [r for r in parsed.responses if r not in set(final)]
            only_prof = [r for r in final if r not in set(parsed.responses)]
            mismatch = (only_file, only_prof)
            if on_mismatch == "error":
                raise ResponseSetMismatchError(
                    f"the file's response set differs from profile {profile!r}: "
                    f"{len(only_file)} only in the file ({_preview(only_file, 3)}), "
                    f"{len(only_prof)} only in the profile ({_preview(only_prof, 3)}); choose "
                    "--on-mismatch keep (keep the profile's set) or union (add the file's)",
                    only_file, only_prof)
            if on_mismatch == "union":
                added_responses = only_file
                final = tuple(final) + tuple(only_file)
    elif parsed.format == "native":
        final = given or parsed.responses
    elif given is not None:
        final = given
    else:
        raise BankError(f"profile {profile!r} does not exist and a paper file has no response "
                        "set: create the profile first (cm profile create) or give its "
                        "responses (--responses FILE or --from-dataset FILE.jsonl)")
    members = {normalise_response(r): r for r in final}
    if parsed.format == "native":
        candidates = list(parsed.ratings)
        held_ids = {r.id for r in held}
        new = [r for r in candidates if r.id not in held_ids]
        keys = {r.model_response for r in candidates}
        values = {r.user_response for r in candidates}
        raw_keys = sorted(k for k in keys if normalise_response(k) not in members)
        raw_values = sorted(v for v in values if normalise_response(v) not in members)
        totals = (len(keys), len(values))
    else:
        pairs: dict[tuple[str, str], None] = {}
        key_seen: dict[str, bool] = {}
        value_seen: dict[str, bool] = {}
        for key, values_ in parsed.mapping.items():
            y_model, ok = _match(key, members)
            key_seen[y_model] = ok
            for v in values_:
                y_user, ok_v = _match(v, members)
                value_seen[y_user] = ok_v
                pairs[(y_model, y_user)] = None
        held_pairs = {(r.model_response, r.user_response) for r in held
                      if r.source == "imported" and r.instance == ""}
        todo = [pr for pr in pairs if pr not in held_pairs]
        new = [Rating.new("", a, b, source="imported") for a, b in todo]
        candidates = pairs
        raw_keys = [k for k, ok in key_seen.items() if not ok]
        raw_values = [v for v, ok in value_seen.items() if not ok]
        totals = (len(key_seen), len(value_seen))
    # The file's guidance: a merge fills responses that have none; a replace takes the file's.
    held_guidance = bank.guidance(profile) if existing is not None else {}
    guidance = {r: t for r, t in (parsed.guidance or {}).items() if r in set(final)
                and (mode == "replace" or r not in held_guidance)
                and held_guidance.get(r) != t}
    return ImportPlan(
        parsed=parsed, profile=profile, mode=mode, on_mismatch=on_mismatch, guidance=guidance,
        create_profile=existing is None, responses=tuple(final),
        responses_added=added_responses, new=new, duplicates=len(candidates) - len(new),
        removed=removed, mismatch=mismatch,
        matched_keys=totals[0] - len(raw_keys), total_keys=totals[0],
        matched_values=totals[1] - len(raw_values), total_values=totals[1],
        raw_keys=raw_keys, raw_values=raw_values, given_responses=given)


def apply_import(bank, plan: ImportPlan) -> ImportReport:
    """Apply a plan in one transaction, re-planned under the write lock so it is current. A
    replace backs up the bank first, inside that same lock (the backup is dropped again when
    the profile turned out to hold nothing to remove)."""
    if plan.mode == "replace":
        with bank.destructive_transaction() as backup:
            fresh, added = _apply(bank, plan)
        if not fresh.removed:
            backup.unlink(missing_ok=True)
            backup = None
    else:
        with bank.transaction(write=True):
            fresh, added = _apply(bank, plan)
        backup = None
    return ImportReport(fresh, added, applied=True, backup=backup)


def _apply(bank, plan: ImportPlan) -> tuple[ImportPlan, int]:
    fresh = plan_import(bank, plan.parsed, plan.profile, mode=plan.mode,
                        on_mismatch=plan.on_mismatch, responses=plan.given_responses)
    p = fresh.parsed
    if fresh.create_profile:
        bank.create_profile(plan.profile, fresh.responses,
                            description=p.description or "", fingerprint=p.fingerprint)
    elif fresh.responses_added:
        bank.update_profile(plan.profile, responses=fresh.responses)
    if fresh.mode == "replace":
        bank.remove_all_ratings(plan.profile)
    if fresh.guidance:
        bank.set_guidances(plan.profile, fresh.guidance)
    added = bank._add_parsed_ratings(plan.profile, fresh.new)
    with_p = _with_distributions(fresh)
    if with_p:
        # the file's vectors follow its response order; the profile's may differ
        where = {r: i for i, r in enumerate(fresh.parsed.responses)}
        order = [where[r] for r in fresh.responses]
        stored = fresh.parsed.model_distributions
        bank.set_model_distributions(plan.profile, {
            r.id: [stored[r.id][i] for i in order] for r in with_p})
    return fresh, added


def _with_distributions(plan: ImportPlan) -> list[Rating]:
    """The ratings the plan adds whose model distribution the file carries and the import
    stores: none where the profile's response set is not the file's (they would not describe
    it)."""
    p = plan.parsed
    if not p.model_distributions or set(plan.responses) != set(p.responses):
        return []
    return [r for r in plan.new if r.id in p.model_distributions]


def import_file(bank, path: str | os.PathLike, profile: str, *, format: str | None = None,
                mode: str = "merge", dry_run: bool = False, on_mismatch: str = "error",
                responses: Sequence[str] | None = None) -> ImportReport:
    parsed = read_bank_file(path, format)
    plan = plan_import(bank, parsed, profile, mode=mode, on_mismatch=on_mismatch,
                       responses=responses)
    if dry_run:
        return ImportReport(plan, 0, applied=False)
    return apply_import(bank, plan)



# ---- the import dialog's preview (no Qt: it runs in the background) ----------------------------

@dataclass
class ImportPreview:
    plan: ImportPlan
    needs_choice: bool    # the response sets differ and no keep/union choice was made
    detected_format: str
    responses_from: str   # where a new profile's response set comes from, in words
    model_note: str | None = None   # the file's ratings came from another model (rebase.py)

    def summary(self) -> str:
        text = self.plan.summary()
        return text + f"\nNote: {self.model_note}." if self.model_note else text


def paper_response_set(parsed: ParsedBankFile) -> tuple[str, ...]:
    """A response set from a paper file alone: every key and value, first appearance first."""
    seen: dict[str, str] = {}
    for key, values in parsed.mapping.items():
        for text in [key, *values]:
            seen.setdefault(normalise_response(text), collapse_whitespace(text))
    return tuple(seen.values())


def compute_import_preview(bank, path: str, fmt: str | None, target: str, mode: str,
                           on_mismatch: str | None, current_profile: str | None,
                           creating: bool, fingerprint: str | None = None) -> ImportPreview:
    """Read + plan an import (writes nothing). `on_mismatch=None` means no choice made yet.
    `fingerprint`: the current model's, to say when the file's ratings are another model's."""
    if not path:
        raise BankError("choose a file to import")
    if creating:
        if not target.strip():
            raise BankError("type a name for the new profile")
        check_profile_name(target)
        try:
            bank.get_profile(target)
        except ProfileNotFoundError:
            pass
        else:
            raise BankError(f"a profile named {target!r} already exists: pick another name, "
                            "or switch to it and import into the current profile")
    elif not target:
        raise BankError("there is no current profile: import into a new profile instead")
    parsed = read_bank_file(path, fmt)
    responses = None
    responses_from = ""
    if creating and parsed.format == "paper":
        # A paper file carries no response set: the new profile takes the current one's (same
        # task, e.g. Banking77's intents) or, with none, every response the file names.
        if current_profile:
            responses = bank.get_profile(current_profile).responses
            responses_from = f"the response set of profile {current_profile!r}"
        else:
            responses = paper_response_set(parsed)
            responses_from = "the responses named in the file"
    elif creating:
        responses_from = "the file's response set"
    try:
        plan = plan_import(bank, parsed, target, mode=mode, on_mismatch=on_mismatch or "error",
                           responses=responses)
        needs_choice = False
    except ResponseSetMismatchError:
        plan = plan_import(bank, parsed, target, mode=mode, on_mismatch="keep",
                           responses=responses)
        needs_choice = True
    plan.responses_from, plan.needs_choice = responses_from, needs_choice
    return ImportPreview(plan, needs_choice, parsed.format, responses_from,
                         file_model_note(parsed, fingerprint))
