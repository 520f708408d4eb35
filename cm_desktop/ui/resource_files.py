"""Files the app ships: icon, style sheet, the sample profile (Banking77) and dataset loading.

Found next to the source tree (a clone or an editable install) or, for a normal install, under
`<prefix>/share/cm-desktop/resources` (pyproject's data-files). No Qt here: the sample profile is
also useful without the GUI.
"""

from __future__ import annotations

import json
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

SAMPLE_PROFILE_NAME = "Banking77 (sample)"
SAMPLE_PROFILE_DESCRIPTION = ("The 77 intents of the Banking77 dataset (Casanueva et al. 2020, CC BY 4.0) "
                              "with a few dozen sample queries.")


class DatasetError(ValueError):
    """A query file could not be read; the message names the file, the line and the problem."""


def _candidates() -> list[Path]:
    here = Path(__file__).resolve()
    found = [here.parents[2] / "resources"]
    for base in {sys.prefix, sys.base_prefix, sysconfig.get_path("data")}:
        found.append(Path(base) / "share" / "cm-desktop" / "resources")
    found.append(Path.home() / ".local" / "share" / "cm-desktop" / "resources")
    return found


def resource_dir() -> Path:
    for path in _candidates():
        if (path / "sample_profile" / "responses.txt").is_file():
            return path
    raise FileNotFoundError("the app's resources folder was not found (looked in: "
                            + ", ".join(str(p) for p in _candidates()) + "); reinstall CM Desktop")


def resource(name: str) -> Path:
    return resource_dir() / name


def sample_responses() -> list[str]:
    text = resource("sample_profile/responses.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class Query:
    text: str
    label: str | None = None     # kept (for evaluation/export) but never shown as the answer


def sample_queries() -> list[Query]:
    return read_queries(resource("sample_profile/queries.jsonl"))


def read_queries(path: str | Path, limit: int = 100_000) -> list[Query]:
    """Queries from `.jsonl` ({"input": ..., optional "label"}) or plain text (one per line).

    Raises DatasetError naming the line on bad input; blank lines are skipped.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    lines = text.splitlines()
    nonblank = [(i, line) for i, line in enumerate(lines, 1) if line.strip()]
    if not nonblank:
        raise DatasetError(f"{path}: the file has no queries")
    as_json = path.suffix.lower() in (".jsonl", ".json") or nonblank[0][1].lstrip().startswith("{")
    queries: list[Query] = []
    for lineno, line in nonblank:
        if len(queries) >= limit:
            break
        if not as_json:
            queries.append(Query(line.strip()))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}, line {lineno}: not valid JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise DatasetError(f"{path}, line {lineno}: expected a JSON object with an \"input\" field")
        value = obj.get("input", obj.get("text"))
        if not isinstance(value, str) or not value.strip():
            raise DatasetError(f"{path}, line {lineno}: missing a non-empty string \"input\" field")
        label = obj.get("label")
        queries.append(Query(value.strip(), label if isinstance(label, str) else None))
    return queries


def ensure_sample_profile(bank) -> bool:
    """Create the sample profile if the bank has none of that name; True if it was created."""
    names = {p.name for p in bank.list_profiles()}
    if SAMPLE_PROFILE_NAME in names:
        return False
    bank.create_profile(SAMPLE_PROFILE_NAME, sample_responses(), description=SAMPLE_PROFILE_DESCRIPTION)
    return True
