"""Exporting a profile: the native file (everything) or the paper's mapping (pairs only).

Files are written owner-only through a temporary name and renamed into place (files.py), so a
crash never leaves half a file and errors name the target, not the temporary file.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

from .files import write_private_atomic
from .reading import MAX_BANK_FILE_BYTES, NATIVE_FORMAT, NATIVE_VERSION
from .records import Rating, json_string, json_value, utc_now


def _encode(path: Path, text: str) -> bytes:
    data = text.encode("utf-8")
    # level 3: a third of the time of level 6 for a few percent more bytes
    return gzip.compress(data, compresslevel=3, mtime=0) if str(path).endswith(".gz") else data


def _rating_line(r: Rating) -> str:
    """== json.dumps(r.to_dict(), ensure_ascii=False), by hand: 100k ratings export in a blink."""
    return (f'{{"id": {json_string(r.id)}, "instance": {json_string(r.instance)}, '
            f'"model_response": {json_string(r.model_response)}, '
            f'"user_response": {json_string(r.user_response)}, '
            f'"source": {json_string(r.source)}, "strategy": {json_value(r.strategy)}, '
            f'"fingerprint": {json_value(r.fingerprint)}, "created": {json_string(r.created)}}}')


def export_native(bank, profile: str, path: str | os.PathLike) -> int:
    """Write the profile and all its ratings; returns the number of ratings written. The stored
    model distributions go with them unless the file would then pass the size a bank file may
    have (MAX_BANK_FILE_BYTES): a file this app could not read back is never written for them."""
    with bank.transaction(write=False):
        p = bank.get_profile(profile)
        ratings = bank.ratings(profile)
        guidance = bank.guidance(profile)
        ids, stored = bank.model_distributions(profile)
    # the model's p over the file's responses (those stored over the current set), 7 digits:
    # a float32 holds no more
    distributions = {rid: [float(f"{v:.7g}") for v in row.tolist()]
                     for rid, row in zip(ids, stored)}
    head = {"format": NATIVE_FORMAT, "version": NATIVE_VERSION, "exported": utc_now(),
            "profile": {"name": p.name, "description": p.description, "created": p.created,
                        "updated": p.updated},
            "responses": list(p.responses), "fingerprint": p.fingerprint, "guidance": guidance,
            "model_distributions": distributions}
    # one rating per line: diffable, and far smaller than indent=2
    body = ",\n".join(map(_rating_line, ratings))

    def document() -> str:
        return json.dumps(head, ensure_ascii=False)[:-1] + ', "ratings": [\n' + body + "\n]}\n"

    text = document()
    if distributions and len(text.encode("utf-8")) > MAX_BANK_FILE_BYTES:
        head["model_distributions"] = {}
        text = document()
    write_private_atomic(path, _encode(Path(path), text))
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
    """Write `{model response: [user responses]}` (counts, instances and guidance are not part
    of that format).
    Returns the number of pairs written."""
    mapping = paper_mapping(bank, profile)
    text = json.dumps(mapping, ensure_ascii=False, indent=2) + "\n"
    write_private_atomic(path, _encode(Path(path), text))
    return sum(len(v) for v in mapping.values())
