"""Reading bank files: the native format and the paper's `{model response: [user responses]}`.

Reading is strict and pure (no bank access): only a regular file, a size limit on the file and
on its decompressed content (a gzip bomb stops at the limit), UTF-8 only, JSON with duplicate
keys, NaN and Infinity rejected, unknown fields and wrong types rejected. Every problem is a
BankFileError naming what is wrong and where (a JSON path like ``ratings[17].user_response`` or
a line and column). Each rating goes through the one rating validator (records.make_rating).

A file is native when its top level has a "format" field that is not a list (a paper file's
values are all lists, so a paper file whose model response is literally "format" is paper).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BankError, BankFileError
from .files import read_input, size_text
from .gc_pause import gc_paused
from .records import Rating, RatingFieldError, make_rating, validate_responses

NATIVE_FORMAT = "cm-desktop-bank"
NATIVE_VERSION = 3          # 2 adds "guidance", 3 "model_distributions"; 1 and 2 still read
READABLE_VERSIONS = (1, 2, 3)
MAX_BANK_FILE_BYTES = 64 * 1024 * 1024  # for the file and, separately, its decompressed content
MAX_FILE_BYTES = MAX_BANK_FILE_BYTES
_GZIP_MAGIC = b"\x1f\x8b"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_NATIVE_KEYS = {"format", "version", "exported", "profile", "responses", "fingerprint",
                "ratings", "guidance", "model_distributions"}
_NATIVE_REQUIRED = {"format", "version", "profile", "responses", "ratings"}
_PROFILE_KEYS = {"name", "description", "created", "updated"}


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
    guidance: dict[str, str] | None = None       # native version 2: {response: guidance}
    # native version 3: {rating id: the model's p over `responses`, in their order}
    model_distributions: dict[str, tuple[float, ...]] | None = None


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
    """The file's bytes (a regular file only), gunzipped when it starts with gzip's magic;
    each of the file and its decompressed content at most `max_bytes`."""
    where = str(path)
    raw = read_input(path, max_bytes)
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
            data = gz.read(max_bytes + 1)   # reads at most the limit: a gzip bomb stops here
    except (OSError, EOFError, zlib.error) as e:
        raise BankFileError(f"damaged gzip data ({e})", path=where) from None
    if len(data) > max_bytes:
        raise BankFileError(f"decompressed content is larger than the {size_text(max_bytes)} "
                            "limit", path=where)
    return data


def read_bank_file(path: str | os.PathLike, format: str | None = None, *,
                   max_bytes: int = MAX_BANK_FILE_BYTES) -> ParsedBankFile:
    """Parse and validate a bank file (gzip detected by its magic bytes). Pure: no bank access."""
    if format not in (None, "native", "paper"):
        raise BankFileError(f"unknown format {format!r} (use native or paper)")
    with gc_paused():  # a big file is ~10 objects a rating, none in a cycle (gc_pause.py)
        return _read_bank_file(Path(path), format, max_bytes)


def _read_bank_file(path: Path, format: str | None, max_bytes: int) -> ParsedBankFile:
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
    except ValueError:  # only an integer with more digits than Python converts
        raise BankFileError(f"a number with more than {sys.get_int_max_str_digits()} digits",
                            path=where) from None
    if not isinstance(doc, dict):
        raise BankFileError(f"expected a JSON object at the top, found {_kind(doc)}", "$", where)
    # a paper file's values are lists: a list under "format" is a paper key, not a header
    detected = "native" if "format" in doc and not isinstance(doc["format"], list) else "paper"
    if format is not None and format != detected:
        hint = ("it has a 'format' field" if detected == "native"
                else "it has no 'format' header")
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
    if version not in READABLE_VERSIONS:
        raise _Invalid(f"unsupported version {version} (this app reads versions "
                       f"{', '.join(map(str, READABLE_VERSIONS))})", "version")
    if version < 2 and "guidance" in doc:
        raise _Invalid("unknown field 'guidance' (version 1 files have none)", "guidance")
    if version < 3 and "model_distributions" in doc:
        raise _Invalid(f"unknown field 'model_distributions' (version {version} files have none)",
                       "model_distributions")
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
                          tuple(ratings), guidance=_parse_guidance(doc.get("guidance"), responses),
                          model_distributions=_parse_distributions(
                              doc.get("model_distributions"), len(responses), seen))


def _parse_distributions(value: Any, width: int,
                         ratings: dict[str, int]) -> dict[str, tuple[float, ...]] | None:
    """{rating id: p}: each id one of the file's ratings, each p `width` probabilities (numbers
    from 0 to 1), not all 0."""
    if value is None:
        return None
    _want(value, dict, "model_distributions", "an object of rating id -> numbers")
    out = {}
    for rid, vec in value.items():
        at = f"model_distributions[{_quote(rid)}]"
        if rid not in ratings:
            raise _Invalid("not one of the file's ratings", at)
        _want(vec, list, at, f"a list of {width} numbers")
        if len(vec) != width:
            raise _Invalid(f"has {len(vec)} numbers, the file has {width} responses", at)
        for j, v in enumerate(vec):
            _want(v, (int, float), f"{at}[{j}]", "a number")
            if not 0 <= v <= 1:
                raise _Invalid("must be a probability, from 0 to 1", f"{at}[{j}]")
        if not sum(vec) > 0:
            raise _Invalid("must not be all 0", at)
        out[rid] = tuple(float(v) for v in vec)
    return out


def _parse_guidance(value: Any, responses: tuple[str, ...]) -> dict[str, str] | None:
    """{response: guidance}: each key one of the file's responses, each text valid guidance."""
    from .guidance import check_guidance

    if value is None:
        return None
    _want(value, dict, "guidance", "an object of response -> text")
    members = set(responses)
    out = {}
    for response, text in value.items():
        at = f"guidance[{_quote(response)}]"
        if response not in members:
            raise _Invalid("not one of the file's responses", at)
        _text(text, at)
        try:
            out[response] = check_guidance(text, response)
        except BankError as e:
            raise _Invalid(str(e), at) from None
    return out


def _parse_rating(item: Any, i: int, surrogates: bool) -> Rating:
    """One rating of a native file, through the one rating validator; its problems get the
    rating's location. Lone surrogates can only come from a \\uD800-style escape, so text is
    checked for them only when the file has one (a file holds up to ~100k ratings)."""
    at = f"ratings[{i}]"
    if type(item) is not dict:
        _want(item, dict, at, "an object")
    try:
        return make_rating(item, fresh=False, unicode=surrogates)
    except RatingFieldError as e:
        message = str(e)
        if e.field and message.startswith(f"{e.field} "):
            message = message[len(e.field) + 1:]
        step = f".{e.field}" if e.field and e.field.isidentifier() else (
            f"[{_quote(e.field)}]" if e.field else "")
        if "unknown rating field" in message or "missing rating field" in message:
            message = message.replace(" rating field", " field")
            step = step if "unknown" in message else ""
        raise _Invalid(message, at + step) from None


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

