"""The bank's records (Profile, Rating, TransitionMatrix) and the rules for their content:
response normalisation, content-hash ids, strictly increasing timestamps, validation.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from .errors import BankError

SOURCES = ("rated", "estimated", "imported")
MAX_NAME_CHARS = 200
MIN_RESPONSES = 2  # a response set needs a choice: one response cannot be rated against another
RATING_FIELDS = frozenset({"id", "instance", "model_response", "user_response", "source",
                           "strategy", "fingerprint", "created"})
FRESH_FIELDS = RATING_FIELDS - {"id"}
_REQUIRED_FIELDS = frozenset({"instance", "model_response", "user_response", "source",
                              "created"})


def normalise_response(text: str) -> str:
    """The matching key for responses: case-insensitive, whitespace collapsed."""
    return " ".join(text.split()).casefold()


def collapse_whitespace(text: str) -> str:
    return " ".join(text.split())


def rating_id(instance: str, model_response: str, user_response: str, source: str,
              strategy: str | None, created: str) -> str:
    """Content hash of a rating (not its fingerprint): equal content -> equal id."""
    # == json.dumps([...], ensure_ascii=False, separators=(",", ":")), built by hand because
    # json.dumps sets up an encoder per call and this runs once per rating in bulk imports
    enc = json_string
    payload = (f"[{enc(instance)},{enc(model_response)},{enc(user_response)},{enc(source)},"
               f"{'null' if strategy is None else enc(strategy)},{enc(created)}]")
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:32]


# json.dumps(text, ensure_ascii=False) without an encoder per call (the C version when
# available): ids and exports run it once per field of every rating
json_string = json.encoder.encode_basestring


def json_value(value: str | None) -> str:
    return "null" if value is None else json_string(value)


_clock_lock = threading.Lock()
_last_us = 0
_second_text = (-1, "")  # (unix second, its "YYYY-MM-DDTHH:MM:SS"), reused within the second


def utc_now() -> str:
    """ISO-8601 UTC time with microseconds (`datetime.isoformat()`'s text), strictly
    increasing within this process.

    Strictly increasing so two ratings of the same triple made in the same microsecond (a batch)
    still get different ids: both are real ratings and both must count. Built from an integer
    clock with the seconds' text cached, because bulk adds stamp every rating (a third of the
    cost of datetime.now().isoformat())."""
    global _last_us, _second_text
    with _clock_lock:
        us = time.time_ns() // 1000
        if us <= _last_us:
            us = _last_us + 1
        _last_us = us
        second, fraction = divmod(us, 1_000_000)
        if second != _second_text[0]:
            _second_text = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{_second_text[1]}.{fraction:06d}+00:00"


def utc_stamps(n: int) -> list[str]:
    """What n calls of utc_now() in a row give, from one clock read: a bulk add stamps every
    rating, and the lock and clock per call were a fifth of its Python time."""
    global _last_us
    with _clock_lock:
        first = max(time.time_ns() // 1000, _last_us + 1)
        _last_us = first + n - 1
    heads: dict[int, str] = {}
    stamps = []
    for us in range(first, first + n):
        second, fraction = divmod(us, 1_000_000)
        head = heads.get(second)
        if head is None:
            head = heads[second] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        stamps.append(f"{head}.{fraction:06d}+00:00")
    return stamps


@dataclass(frozen=True)
class Profile:
    id: int
    name: str
    responses: tuple[str, ...]
    description: str
    fingerprint: str | None
    created: str
    updated: str


class Rating(NamedTuple):
    """One rating. A named tuple, in the order of the ratings table's columns, because bulk
    adds, imports and exports make and store one per rating: a tuple is built 6x faster than a
    frozen dataclass and goes to SQLite's executemany as it is."""

    id: str
    instance: str
    model_response: str
    user_response: str
    source: str
    strategy: str | None
    fingerprint: str | None
    created: str

    @classmethod
    def new(cls, instance: str, model_response: str, user_response: str, *,
            source: str = "rated", strategy: str | None = None,
            fingerprint: str | None = None, created: str | None = None) -> "Rating":
        created = created or utc_now()
        rid = rating_id(instance, model_response, user_response, source, strategy, created)
        return cls(rid, instance, model_response, user_response, source, strategy,
                   fingerprint, created)

    def expected_id(self) -> str:
        return rating_id(self.instance, self.model_response, self.user_response, self.source,
                         self.strategy, self.created)

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


@dataclass
class TransitionMatrix:
    responses: list[str]
    counts: np.ndarray              # |R| x |R|, rows y', columns y
    raw_model_responses: list[str]  # y' outside R, sorted
    raw_counts: np.ndarray          # |raw| x |R|
    # pairs whose user response is outside R (e.g. kept from a paper import): not in any matrix
    unmatched: dict[tuple[str, str], int] = field(default_factory=dict)


@functools.lru_cache(maxsize=64)
def response_index(responses_json: str) -> tuple[tuple[str, ...], dict[str, int], dict[str, str]]:
    responses = tuple(json.loads(responses_json))
    return (responses, {r: i for i, r in enumerate(responses)},
            {normalise_response(r): r for r in responses})


def responses_digest(responses: Sequence[str]) -> str:
    """A short hash of a response set, in order: a stored per-response vector (the model's
    distribution) is read back only while the set it was made over is unchanged."""
    return hashlib.sha256("\x1f".join(responses).encode("utf-8")).hexdigest()[:16]


def check_text(value: Any, what: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise BankError(f"{what} must be text, not {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise BankError(f"{what} must not be empty")
    return value


def validate_responses(responses: Sequence[str]) -> tuple[str, ...]:
    """The one response-set rule (the store, bank files, the CLI and the New-profile dialog):
    a list of at least MIN_RESPONSES texts, whitespace collapsed, no two equal after
    case/whitespace normalisation (what matching a response uses)."""
    if isinstance(responses, (str, bytes)) or not isinstance(responses, Sequence):
        raise BankError("the response set must be a list of responses")
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, r in enumerate(responses):
        r = collapse_whitespace(check_text(r, f"response {i + 1}"))
        key = normalise_response(r)
        if key in seen:
            raise BankError(f"response {i + 1} ({r!r}) repeats response {seen[key] + 1} "
                            "(listed twice, ignoring case and spaces)")
        seen[key] = i
        out.append(r)
    if not out:
        raise BankError("the response set is empty")
    if len(out) < MIN_RESPONSES:
        raise BankError(f"a response set needs at least {MIN_RESPONSES} responses (one to "
                        f"choose and one to choose instead), not {len(out)}")
    return tuple(out)


def check_profile_name(name: Any) -> str:
    name = check_text(name, "profile name")
    if name != name.strip() or len(name) > MAX_NAME_CHARS or any(ord(c) < 32 for c in name):
        raise BankError(f"profile name {name!r} must be at most {MAX_NAME_CHARS} characters, "
                        "with no leading/trailing spaces or control characters")
    return name


class RatingFieldError(BankError):
    """A rating field that is wrong; `field` names it (a bank file turns it into a location)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def _bad_text(value: Any, what: str, *, empty: bool, null: bool, unicode: bool) -> None:
    """Raise RatingFieldError if `value` is not acceptable text (the slow, precise path)."""
    if value is None and null:
        return
    if not isinstance(value, str):
        kind = "text or null" if null else "text"
        raise RatingFieldError(f"{what} must be {kind}, not {type(value).__name__}", what)
    if unicode:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise RatingFieldError(f"{what} is not valid Unicode (a lone surrogate)",
                                   what) from None
    if not empty and not value.strip():
        raise RatingFieldError(f"{what} must not be empty", what)


def make_rating(fields: Mapping[str, Any], *, members: Mapping[str, str] | None = None,
                fresh: bool = True, unicode: bool = True, now: str | None = None) -> Rating:
    """The one rating validator: a checked Rating from its fields, or RatingFieldError.

    fresh=True: a new rating (add_rating, `cm bank add`): fields from FRESH_FIELDS, instance
    defaults to "", source to "rated", created to now; responses have their whitespace
    collapsed and, when they match a member of the response set (`members`: normalised ->
    member), are stored as that member; the id is computed.
    fresh=False: an existing rating (a bank file, a Rating being restored): stored verbatim;
    instance, both responses, source and created are required; an id, if given, must match
    the content. unicode=True also rejects lone surrogates here (otherwise SQLite does).
    now: the stamp (from utc_stamps) for a fresh rating without a time; utc_now() if None.
    Written flat, because bulk adds and imports call it once per rating.
    """
    allowed = FRESH_FIELDS if fresh else RATING_FIELDS
    if not allowed.issuperset(fields):
        unknown = sorted(set(fields) - allowed)
        raise RatingFieldError(f"unknown rating field {unknown[0]!r}", unknown[0])
    if not fresh and not _REQUIRED_FIELDS.issubset(fields):
        missing = sorted(_REQUIRED_FIELDS - set(fields))
        raise RatingFieldError(f"missing rating field {missing[0]!r}", missing[0])
    instance = fields.get("instance", "")
    y_model, y_user = fields.get("model_response"), fields.get("user_response")
    source = fields.get("source") or ("rated" if fresh else fields.get("source"))
    strategy, fingerprint = fields.get("strategy"), fields.get("fingerprint")
    created = fields.get("created")
    stamped = fresh and created is None
    if stamped:
        created = utc_now() if now is None else now
    if (unicode or type(instance) is not str or type(y_model) is not str
            or type(y_user) is not str or type(source) is not str or type(created) is not str
            or not (strategy is None or type(strategy) is str)
            or not (fingerprint is None or type(fingerprint) is str)
            or not y_model.strip() or not y_user.strip() or not created.strip()):
        for what, value, empty, null in (
                ("instance", instance, True, False), ("model_response", y_model, False, False),
                ("user_response", y_user, False, False), ("source", source, False, False),
                ("strategy", strategy, True, True), ("fingerprint", fingerprint, True, True),
                ("created", created, False, False)):
            _bad_text(value, what, empty=empty, null=null, unicode=unicode)
    if source not in SOURCES:
        raise RatingFieldError(f"source must be one of {', '.join(SOURCES)}, not {source!r}",
                               "source")
    if not stamped:  # a time we made ourselves needs no parsing
        try:
            dt.datetime.fromisoformat(created)
        except ValueError:
            raise RatingFieldError(f"created {created!r} is not an ISO-8601 time",
                                   "created") from None
    if fresh:
        y_model, y_user = collapse_whitespace(y_model), collapse_whitespace(y_user)
        if members:
            y_model = members.get(y_model.casefold(), y_model)
            y_user = members.get(y_user.casefold(), y_user)
    rid = rating_id(instance, y_model, y_user, source, strategy, created)
    given = fields.get("id")
    if not fresh and given is not None and given != rid:
        _bad_text(given, "id", empty=False, null=False, unicode=unicode)
        raise RatingFieldError(f"id {given!r} does not match its content (expected "
                               f"{rid}): the rating was changed after export", "id")
    return Rating(rid, instance, y_model, y_user, source, strategy, fingerprint, created)


def check_rating(r: Rating) -> Rating:
    """An existing Rating object checked by the one validator (its id must match)."""
    if not isinstance(r, Rating):
        raise BankError(f"expected a Rating, not {type(r).__name__}")
    return make_rating(r._asdict(), fresh=False)
