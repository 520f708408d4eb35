"""Writes resources/sample_profile/queries.jsonl: the Banking77 sample profile's queries.

    python3 tools/make_sample_queries.py ../shared/datasets/banking77

The 40 queries the file began with stay first, in their order (the first screens a new user sees
are unchanged); then, in a seeded random order, queries from large.jsonl (the training split)
until every intent has PER_INTENT: 140 characters or fewer, none of them in small.jsonl (the
held-out split the benchmarks test on), no input twice (case and spacing ignored).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cm_desktop.cm.retrieval import normalise_text  # noqa: E402
from cm_desktop.datasets import load_dataset  # noqa: E402

PER_INTENT = 10
MAX_CHARS = 140
SEED = 77
FIRST = 40   # the queries the sample shipped with before it grew


def main(dataset_dir: str) -> None:
    out = REPO / "resources" / "sample_profile" / "queries.jsonl"
    first = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()][:FIRST]
    held_out = {normalise_text(r["input"]) for r in load_dataset(Path(dataset_dir) / "small.jsonl")}
    pool = load_dataset(Path(dataset_dir) / "large.jsonl")
    random.Random(SEED).shuffle(pool)
    seen = {normalise_text(r["input"]) for r in first}
    per_intent: dict[str, int] = {}
    for r in first:
        per_intent[r["label"]] = per_intent.get(r["label"], 0) + 1
    rows = [{"input": r["input"], "label": r["label"]} for r in first]
    for r in pool:
        key = normalise_text(r["input"])
        if (len(r["input"]) > MAX_CHARS or key in seen or key in held_out
                or per_intent.get(r["label"], 0) >= PER_INTENT):
            continue
        seen.add(key)
        per_intent[r["label"]] = per_intent.get(r["label"], 0) + 1
        rows.append({"input": r["input"], "label": r["label"]})
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                   encoding="utf-8")
    print(f"{len(rows)} queries, {len(per_intent)} intents -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
