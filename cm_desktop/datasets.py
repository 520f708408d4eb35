"""Datasets: the one reader of query files, for the CLI (`--from-dataset`, `cm estimate`,
`cm eval`), the engine and the GUI's *Open dataset…*.

A dataset is JSON lines, one object per line with a text field "input" ("text" is accepted as
its other name) and an optional "label" (other fields, such as "task", are ignored), or plain
text with one query per line (no labels). Blank lines are skipped. The file must be a regular
file; it is streamed line by line, split on "\\n" only (U+2028 inside a JSON string is text),
and capped in size and line length (bank_store.files). Every problem is one DatasetError that
names the file and the line: `PATH:LINE: what is wrong`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from bank_store import BankFileError
from bank_store.files import iter_input_lines

MAX_QUERIES = 100_000  # the GUI's queue holds at most this many


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message names the file and the line."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset file does not exist."""


@dataclass(frozen=True)
class Query:
    text: str
    label: str | None = None     # kept (for evaluation/export) but never shown as the answer


def read_dataset(path: str | os.PathLike, *, labels_required: bool = False,
                 limit: int | None = None) -> list[Query]:
    """The queries of a dataset file, in file order, at most `limit` of them."""
    path = Path(path)
    queries: list[Query] = []
    as_json: bool | None = None
    try:
        for number, line in iter_input_lines(path):
            if not line.strip():
                continue
            if limit is not None and len(queries) >= limit:
                break
            if as_json is None:
                as_json = (path.suffix.lower() in (".jsonl", ".json")
                           or line.lstrip().startswith("{"))
                if not as_json and labels_required:
                    raise DatasetError(f"{path}:{number}: a plain text file has no labels; "
                                       "use JSON lines with \"input\" and \"label\" fields")
            queries.append(_json_query(path, number, line, labels_required) if as_json
                           else Query(line.strip()))
    except BankFileError as e:
        if e.message == "file not found":
            raise DatasetNotFoundError(f"{path}: dataset not found") from None
        where = e.location.replace("line ", "") if e.location else None
        raise DatasetError(f"{path}:{where}: {e.message}" if where
                           else f"{path}: {e.message}") from None
    if not queries:
        raise DatasetError(f"{path}: the file has no queries")
    return queries


def _json_query(path: Path, number: int, line: str, labels_required: bool) -> Query:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}:{number}: not valid JSON ({e.msg})") from None
    except (ValueError, RecursionError):
        raise DatasetError(f"{path}:{number}: not valid JSON (a value too large or too "
                           "deeply nested)") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}:{number}: expected a JSON object with an \"input\" field")
    text = obj.get("input", obj.get("text"))
    if not isinstance(text, str) or not text.strip():
        raise DatasetError(f"{path}:{number}: each line needs a non-empty string \"input\" "
                           "field")
    label = obj.get("label")
    if labels_required and (not isinstance(label, str) or not label.strip()):
        raise DatasetError(f"{path}:{number}: each line needs string fields \"input\" and "
                           "\"label\"")
    return Query(text, label if isinstance(label, str) else None)


def read_queries(path: str | os.PathLike, limit: int = MAX_QUERIES) -> list[Query]:
    """Queries for the Rate view (labels optional, kept but never shown as the answer); the
    text is shown stripped of surrounding blanks."""
    return [Query(q.text.strip(), q.label) for q in read_dataset(path, limit=limit)]


def load_dataset(path: str | os.PathLike) -> list[dict]:
    """Labelled records `{"input", "label"}` for estimation and evaluation."""
    return [{"input": q.text, "label": q.label}
            for q in read_dataset(path, labels_required=True)]
