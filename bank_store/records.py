"""The bank's records (Profile, Rating, TransitionMatrix) and the rules for their content:
response normalisation, content-hash ids, strictly increasing timestamps, validation.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from .errors import BankError

SOURCES = ("rated", "estimated", "imported")
MAX_NAME_CHARS = 200


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
    enc = _json_string
    payload = (f"[{enc(instance)},{enc(model_response)},{enc(user_response)},{enc(source)},"
               f"{'null' if strategy is None else enc(strategy)},{enc(created)}]")
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:32]


_json_string = json.encoder.encode_basestring  # the C version when available


_clock_lock = threading.Lock()
_last_time = dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def utc_now() -> str:
    """ISO-8601 UTC time, strictly increasing within this process.

    Strictly increasing so two ratings of the same triple made in the same microsecond (a batch)
    still get different ids: both are real ratings and both must count.
    """
    global _last_time
    with _clock_lock:
        now = dt.datetime.now(dt.timezone.utc)
        if now <= _last_time:
            now = _last_time + dt.timedelta(microseconds=1)
        _last_time = now
    return now.isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Profile:
    id: int
    name: str
    responses: tuple[str, ...]
    description: str
    fingerprint: str | None
    created: str
    updated: str


@dataclass(frozen=True)
class Rating:
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
        return asdict(self)


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


def check_text(value: Any, what: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise BankError(f"{what} must be text, not {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise BankError(f"{what} must not be empty")
    return value


def validate_responses(responses: Sequence[str]) -> tuple[str, ...]:
    """A response set: non-empty, text, no two equal after case/whitespace normalisation."""
    if isinstance(responses, (str, bytes)) or not isinstance(responses, Sequence):
        raise BankError("the response set must be a list of responses")
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, r in enumerate(responses):
        r = collapse_whitespace(check_text(r, f"response {i + 1}"))
        key = normalise_response(r)
        if key in seen:
            raise BankError(f"response {i + 1} ({r!r}) repeats response {seen[key] + 1}")
        seen[key] = i
        out.append(r)
    if not out:
        raise BankError("the response set is empty")
    return tuple(out)


def check_profile_name(name: Any) -> str:
    name = check_text(name, "profile name")
    if name != name.strip() or len(name) > MAX_NAME_CHARS or any(ord(c) < 32 for c in name):
        raise BankError(f"profile name {name!r} must be at most {MAX_NAME_CHARS} characters, "
                        "with no leading/trailing spaces or control characters")
    return name


def check_rating(r: Rating, *, check_id: bool = True) -> Rating:
    check_text(r.instance, "instance", allow_empty=True)
    check_text(r.model_response, "model_response")
    check_text(r.user_response, "user_response")
    if r.source not in SOURCES:
        raise BankError(f"source must be one of {', '.join(SOURCES)}, not {r.source!r}")
    for what in ("strategy", "fingerprint"):
        if getattr(r, what) is not None:
            check_text(getattr(r, what), what, allow_empty=True)
    try:
        dt.datetime.fromisoformat(check_text(r.created, "created"))
    except ValueError:
        raise BankError(f"created {r.created!r} is not an ISO-8601 time") from None
    if check_id and r.id != r.expected_id():
        raise BankError(f"rating id {r.id!r} does not match its content (expected "
                        f"{r.expected_id()!r})")
    return r
