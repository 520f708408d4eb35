"""Bank files: the native format and the paper's `{model response: [user responses]}` format.

Reading is strict and pure (no bank access): a size limit on the file and on its decompressed
content (a gzip bomb stops at the limit), UTF-8 only, JSON with duplicate keys, NaN and
Infinity rejected, unknown fields and wrong types rejected. Every problem is a BankFileError
naming what is wrong and where (a JSON path like ``ratings[17].user_response`` or a line and
column). Importing is plan, then apply: `plan_import` validates everything against the bank and
changes nothing; `apply_import` re-plans under the write lock and applies it in one transaction,
so any error leaves the bank exactly as it was.

Paper files carry no instances, counts or times: each distinct (y', y) pair becomes one rating
with an empty instance and source ``imported``; a merge skips pairs the profile already holds
as such instance-less imported ratings, so importing the same paper file twice changes nothing.
Keys and values are matched to the response set case-insensitively after whitespace
normalisation; unmatched ones are kept as raw responses and counted in the plan. A paper file
into a new profile needs the response set given (the format has none). `on_mismatch` applies to
native files, whose response set may differ from the profile's.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .errors import (BankError, BankFileError, ProfileNotFoundError,
                     ResponseSetMismatchError)
from .records import (SOURCES, Profile, Rating, collapse_whitespace, normalise_response,
                      rating_id, utc_now, validate_responses)

NATIVE_FORMAT = "cm-desktop-bank"
NATIVE_VERSION = 1
MAX_BANK_FILE_BYTES = 64 * 1024 * 1024  # for the file and, separately, its decompressed content
MAX_FILE_BYTES = MAX_BANK_FILE_BYTES
_GZIP_MAGIC = b"\x1f\x8b"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_NATIVE_KEYS = {"format", "version", "exported", "profile", "responses", "fingerprint",
                "ratings"}
_NATIVE_REQUIRED = {"format", "version", "profile", "responses", "ratings"}
_PROFILE_KEYS = {"name", "description", "created", "updated"}
_RATING_KEYS = {"id", "instance", "model_response", "user_response", "source", "strategy",
                "fingerprint", "created"}
_RATING_REQUIRED = {"instance", "model_response", "user_response", "source", "created"}


@dataclass(frozen=True)
class ParsedBankFile:
    format: str                                  # "native" | "paper"
    path: str
    profile_name: str | None = None              # native only
    description: str = ""
    fingerprint: str | None = None
    responses: tuple[str, ...] | None = None     # native only
    ratings: tuple[Rating, ...] = ()             # native only
    mapping: dict[str, list[str]] | None = None  # paper only, as in the file


# ---- reading ----------------------------------------------------------------------------------

class _DuplicateKey(Exception):
    pass


class _BadConstant(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # rare: only then look for the repeated key
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


def _reject_constant(name: str) -> Any:
    raise _BadConstant(name)


def _line_col(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    return f"line {line} column {pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


def _read_limited(path: Path, max_bytes: int) -> bytes:
    where = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise BankFileError("file not found", path=where) from None
    except IsADirectoryError:
        raise BankFileError("is a directory, not a bank file", path=where) from None
    except OSError as e:
        raise BankFileError(f"cannot read the file: {e.strerror}", path=where) from None
    limit = f"{max_bytes / 2**20:g} MiB"
    if len(raw) > max_bytes:
        raise BankFileError(f"file is larger than the {limit} limit", path=where)
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
            data = gz.read(max_bytes + 1)   # reads at most the limit: a gzip bomb stops here
    except (OSError, EOFError, zlib.error) as e:
        raise BankFileError(f"damaged gzip data ({e})", path=where) from None
    if len(data) > max_bytes:
        raise BankFileError(f"decompressed content is larger than the {limit} limit", path=where)
    return data


def read_bank_file(path: str | os.PathLike, format: str | None = None, *,
                   max_bytes: int = MAX_BANK_FILE_BYTES) -> ParsedBankFile:
    """Parse and validate a bank file (gzip detected by its magic bytes). Pure: no bank access."""
    if format not in (None, "native", "paper"):
        raise BankFileError(f"unknown format {format!r} (use native or paper)")
    path = Path(path)
    where = str(path)
    data = _read_limited(path, max_bytes)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte-order mark is harmless
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise BankFileError(f"not UTF-8 text (byte 0x{data[e.start]:02x})",
                            f"line {line}, byte {e.start}", where) from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise BankFileError(f"invalid JSON: {e.msg}", _line_col(text, e.pos), where) from None
    except _DuplicateKey as e:
        key = e.args[0]
        hits = [m.start() for m in re.finditer(re.escape(json.dumps(key)) + r"\s*:", text)]
        loc = _line_col(text, hits[1]) if len(hits) > 1 else None
        raise BankFileError(f"duplicate key {key!r}", loc, where) from None
    except _BadConstant as e:
        m = re.search(re.escape(e.args[0]), text)
        raise BankFileError(f"{e.args[0]} is not allowed in a bank file",
                            _line_col(text, m.start()) if m else None, where) from None
    except RecursionError:
        raise BankFileError("JSON nested too deeply", path=where) from None
    except ValueError as e:  # e.g. an integer with more digits than Python accepts
        raise BankFileError(f"invalid JSON value: {e}", path=where) from None
    if not isinstance(doc, dict):
        raise BankFileError(f"expected a JSON object at the top, found {_kind(doc)}", "$", where)
    detected = "native" if "format" in doc else "paper"
    if format is not None and format != detected:
        hint = ("it has a 'format' field" if detected == "native"
                else "it has no 'format' field")
        raise BankFileError(f"not a {format} bank file ({hint})", "$", where)
    try:
        # a lone surrogate can only come from a \\uD800-\\uDFFF escape: check text only then
        surrogates = _SURROGATE_ESCAPE.search(text) is not None
        if detected == "native":
            return _parse_native(doc, where, surrogates)
        return _parse_paper(doc, where)
    except _Invalid as e:
        raise BankFileError(e.args[0], e.args[1], where) from None


class _Invalid(Exception):
    """(message, json path) raised while validating a parsed document."""


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), "a value")


def _want(value: Any, kind: type | tuple, where: str, what: str) -> Any:
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise _Invalid(f"expected {what}, found {_kind(value)}", where)
    return value


def _quote(key: str) -> str:
    """A key as it may appear in a location: readable, but escaped if it is not valid text."""
    try:
        key.encode("utf-8")
        return json.dumps(key, ensure_ascii=False)
    except UnicodeEncodeError:
        return json.dumps(key)


def _unicode(value: str, where: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800-style escape
        raise _Invalid("text is not valid Unicode (a lone surrogate escape)", where) from None
    return value


def _text(value: Any, where: str, *, empty: bool = False, null: bool = False) -> Any:
    if value is None and null:
        return None
    _want(value, str, where, "text or null" if null else "text")
    _unicode(value, where)
    if not empty and not value.strip():
        raise _Invalid("must not be empty", where)
    return value


def _fields(obj: Any, where: str, allowed: set, required: set) -> dict:
    _want(obj, dict, where, "an object")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        name = unknown[0]
        step = f".{name}" if name.isidentifier() else f"[{_quote(name)}]"
        raise _Invalid(f"unknown field {name!r}", f"{where}{step}")
    missing = sorted(required - set(obj))
    if missing:
        raise _Invalid(f"missing field {missing[0]!r}", where)
    return obj


def _parse_native(doc: dict, where: str, surrogates: bool = True) -> ParsedBankFile:
    _fields(doc, "$", _NATIVE_KEYS, _NATIVE_REQUIRED)
    if doc["format"] != NATIVE_FORMAT:
        raise _Invalid(f"unknown format {doc['format']!r} (expected {NATIVE_FORMAT!r})", "format")
    version = _want(doc["version"], int, "version", "an integer")
    if version != NATIVE_VERSION:
        raise _Invalid(f"unsupported version {version} (this app reads version "
                       f"{NATIVE_VERSION})", "version")
    _text(doc.get("exported"), "exported", null=True)
    prof = _fields(doc["profile"], "profile", _PROFILE_KEYS, {"name"})
    name = _text(prof["name"], "profile.name")
    description = _text(prof.get("description", ""), "profile.description", empty=True)
    for key in ("created", "updated"):
        _text(prof.get(key), f"profile.{key}", null=True)
    fingerprint = _text(doc.get("fingerprint"), "fingerprint", empty=True, null=True)
    responses = _want(doc["responses"], list, "responses", "a list of responses")
    for i, r in enumerate(responses):
        _text(r, f"responses[{i}]")
    try:
        responses = validate_responses(responses)
    except BankError as e:
        raise _Invalid(str(e), "responses") from None
    ratings: list[Rating] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(_want(doc["ratings"], list, "ratings", "a list of ratings")):
        rating = _parse_rating(item, i, surrogates)
        if rating.id in seen:
            raise _Invalid(f"repeats ratings[{seen[rating.id]}]", f"ratings[{i}]")
        seen[rating.id] = i
        ratings.append(rating)
    return ParsedBankFile("native", where, name, description, fingerprint, responses,
                          tuple(ratings))


def _parse_rating(item: Any, i: int, surrogates: bool) -> Rating:
    """One rating of a native file. The common case (every field right) is checked with a few
    type tests, because a file holds up to ~100k of them; anything odd goes through the slow
    checks, which name the exact problem."""
    if (type(item) is not dict or not _RATING_KEYS.issuperset(item)
            or not _RATING_REQUIRED.issubset(item)):
        _fields(item, f"ratings[{i}]", _RATING_KEYS, _RATING_REQUIRED)
    values = (item["instance"], item["model_response"], item["user_response"], item["source"],
              item.get("strategy"), item.get("fingerprint"), item["created"])
    instance, y_model, y_user, source, strategy, fingerprint, created = values
    if (surrogates or type(instance) is not str or type(y_model) is not str
            or type(y_user) is not str or type(source) is not str or type(created) is not str
            or not (strategy is None or type(strategy) is str)
            or not (fingerprint is None or type(fingerprint) is str)
            or not y_model.strip() or not y_user.strip() or not created.strip()):
        at = f"ratings[{i}]"
        for k in ("instance", "model_response", "user_response", "source", "created"):
            _text(item[k], f"{at}.{k}", empty=(k == "instance"))
        for k in ("strategy", "fingerprint"):
            _text(item.get(k), f"{at}.{k}", empty=True, null=True)
    if source not in SOURCES:
        raise _Invalid(f"source must be one of {', '.join(SOURCES)}", f"ratings[{i}].source")
    try:
        dt.datetime.fromisoformat(created)
    except ValueError:
        raise _Invalid("not an ISO-8601 time", f"ratings[{i}].created") from None
    rid = rating_id(instance, y_model, y_user, source, strategy, created)
    if "id" in item and item["id"] != rid:
        _text(item["id"], f"ratings[{i}].id")
        raise _Invalid(f"id does not match the rating's content (expected {rid}): "
                       "the rating was changed after export", f"ratings[{i}].id")
    return Rating(rid, instance, y_model, y_user, source, strategy, fingerprint, created)


def _parse_paper(doc: dict, where: str) -> ParsedBankFile:
    mapping: dict[str, list[str]] = {}
    for key, values in doc.items():
        at = f"$[{_quote(key)}]"
        _unicode(key, at)
        if not key.strip():
            raise _Invalid("an empty model response as key", at)
        _want(values, list, at, "a list of user responses")
        for j, v in enumerate(values):
            _text(v, f"{at}[{j}]")
        mapping[key] = list(values)
    return ParsedBankFile("paper", where, mapping=mapping)


# ---- planning and applying an import ----------------------------------------------------------

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

    def summary(self) -> str:
        p = self.parsed
        lines = [f"{'new' if self.create_profile else 'existing'} profile {self.profile!r}, "
                 f"from {p.format} file {p.path}"]
        if self.removed:
            lines.append(f"replace: remove the profile's {self.removed} ratings first")
        lines.append(f"add {len(self.new)} ratings, skip {self.duplicates} already present")
        lines.append(f"model responses in the response set: {self.matched_keys}/"
                     f"{self.total_keys}; user responses: {self.matched_values}/"
                     f"{self.total_values}")
        if self.raw_keys:
            lines.append(f"kept as raw model responses: {_preview(self.raw_keys)}")
        if self.raw_values:
            lines.append(f"kept as raw user responses: {_preview(self.raw_values)}")
        if self.mismatch:
            lines.append(f"response set differs: {len(self.mismatch[0])} only in the file, "
                         f"{len(self.mismatch[1])} only in the profile ({self.on_mismatch})")
        if self.responses_added:
            lines.append(f"add to the response set: {_preview(self.responses_added)}")
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
    return ImportPlan(
        parsed=parsed, profile=profile, mode=mode, on_mismatch=on_mismatch,
        create_profile=existing is None, responses=tuple(final),
        responses_added=added_responses, new=new, duplicates=len(candidates) - len(new),
        removed=removed, mismatch=mismatch,
        matched_keys=totals[0] - len(raw_keys), total_keys=totals[0],
        matched_values=totals[1] - len(raw_values), total_values=totals[1],
        raw_keys=raw_keys, raw_values=raw_values, given_responses=given)


def apply_import(bank, plan: ImportPlan) -> ImportReport:
    """Apply a plan in one transaction (re-planned under the write lock, so it is current).
    A replace of a non-empty profile takes a backup first."""
    backup = bank.backup() if plan.mode == "replace" and plan.removed else None
    with bank.transaction(write=True):
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
        added = bank._add_parsed_ratings(plan.profile, fresh.new)
    return ImportReport(fresh, added, applied=True, backup=backup)


def import_file(bank, path: str | os.PathLike, profile: str, *, format: str | None = None,
                mode: str = "merge", dry_run: bool = False, on_mismatch: str = "error",
                responses: Sequence[str] | None = None) -> ImportReport:
    parsed = read_bank_file(path, format)
    plan = plan_import(bank, parsed, profile, mode=mode, on_mismatch=on_mismatch,
                       responses=responses)
    if dry_run:
        return ImportReport(plan, 0, applied=False)
    return apply_import(bank, plan)


# ---- exporting --------------------------------------------------------------------------------

def _write_atomic(path: Path, data: bytes) -> None:
    """Write next to the target, fsync, then rename: a crash never leaves half a file. 0600."""
    path = Path(path).expanduser()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise BankError(f"cannot write {path}: {e.strerror}") from e


def _encode(path: Path, text: str) -> bytes:
    data = text.encode("utf-8")
    # level 3: a third of the time of level 6 for a few percent more bytes
    return gzip.compress(data, compresslevel=3, mtime=0) if str(path).endswith(".gz") else data


def _json_value(value: str | None) -> str:
    return "null" if value is None else _json_string(value)


_json_string = json.encoder.encode_basestring  # ensure_ascii=False, the C version


def _rating_line(r: Rating) -> str:
    """== json.dumps(r.to_dict(), ensure_ascii=False), by hand: 100k ratings export in a blink."""
    return (f'{{"id": {_json_string(r.id)}, "instance": {_json_string(r.instance)}, '
            f'"model_response": {_json_string(r.model_response)}, '
            f'"user_response": {_json_string(r.user_response)}, '
            f'"source": {_json_string(r.source)}, "strategy": {_json_value(r.strategy)}, '
            f'"fingerprint": {_json_value(r.fingerprint)}, "created": {_json_string(r.created)}}}')


def export_native(bank, profile: str, path: str | os.PathLike) -> int:
    """Write the profile and all its ratings; returns the number of ratings written."""
    with bank.transaction(write=False):
        p = bank.get_profile(profile)
        ratings = bank.ratings(profile)
    head = {"format": NATIVE_FORMAT, "version": NATIVE_VERSION, "exported": utc_now(),
            "profile": {"name": p.name, "description": p.description, "created": p.created,
                        "updated": p.updated},
            "responses": list(p.responses), "fingerprint": p.fingerprint}
    # one rating per line: diffable, and far smaller than indent=2
    body = ",\n".join(map(_rating_line, ratings))
    text = json.dumps(head, ensure_ascii=False)[:-1] + ', "ratings": [\n' + body + "\n]}\n"
    _write_atomic(Path(path), _encode(Path(path), text))
    return len(ratings)


def paper_mapping(bank, profile: str) -> dict[str, list[str]]:
    """{y': [y, ...]}: keys in response-set order then raw keys, values most frequent first."""
    with bank.transaction(write=False):
        p = bank.get_profile(profile)
        counts = bank.counts(profile)
    order = {r: i for i, r in enumerate(p.responses)}
    big = len(order)
    grouped: dict[str, list[tuple[str, int]]] = {}
    for (a, b), n in counts.items():
        grouped.setdefault(a, []).append((b, n))
    keys = sorted(grouped, key=lambda k: (order.get(k, big), k))
    return {k: [b for b, _ in sorted(grouped[k], key=lambda t: (-t[1], order.get(t[0], big),
                                                                  t[0]))]
            for k in keys}


def export_paper(bank, profile: str, path: str | os.PathLike) -> int:
    """Write `{model response: [user responses]}` (counts are not part of that format).
    Returns the number of pairs written."""
    mapping = paper_mapping(bank, profile)
    text = json.dumps(mapping, ensure_ascii=False, indent=2) + "\n"
    _write_atomic(Path(path), _encode(Path(path), text))
    return sum(len(v) for v in mapping.values())
