"""Bank speed: 100,000 ratings added, candidate lookups, native export + import of them.

Each figure is printed with a baseline measured in the same run:
- insert: batched `add_ratings` (one transaction) vs one transaction per rating (`add_rating`,
  as the GUI does), the latter on a smaller N and extrapolated linearly;
- lookup: `candidate_set` p50/p99 over random model responses;
- export+import: `export_native` then `import_file` into a fresh bank, vs the time to insert
  the same ratings (so the file round trip is shown as a multiple of a plain insert).

Targets: insert <= 3 s, lookup p99 <= 1 ms, export+import <= 5 s.

The insert and the round trip run --repeat times (each into a fresh bank) and print every run
and the median: on a shared 2-core VM one run's CPU time varies by up to a third.

    python3 benchmarks/bank_bench.py [--n 100000] [--lookups 10000] [--baseline-n 2000]
                                     [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bank_store import DiscrepancyBank  # noqa: E402
from bank_store.formats import export_native, import_file  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"


def response_set() -> list[str]:
    labels = SHARED / "datasets" / "banking77" / "large.jsonl"
    if labels.exists():
        return sorted({json.loads(line)["label"] for line in labels.open(encoding="utf-8")})
    return [f"intent {i}" for i in range(77)]


def make_rows(n: int, responses: list[str], seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        y_model = rng.choice(responses)
        # 70 % agreement, the rest a confusion among a few neighbours: a realistic shape
        y_user = y_model if rng.random() < 0.7 else responses[
            (responses.index(y_model) + rng.randint(1, 5)) % len(responses)]
        rows.append({"instance": f"customer message number {i}: where is my money?",
                     "model_response": y_model, "user_response": y_user, "strategy": "vanilla",
                     "source": "rated"})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--lookups", type=int, default=10_000)
    ap.add_argument("--baseline-n", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    responses = response_set()
    rows = make_rows(args.n, responses)
    tmp = Path(tempfile.mkdtemp(prefix="bank_bench_"))

    # baseline: one transaction (and one fsync) per rating
    base = DiscrepancyBank(tmp / "baseline.sqlite3")
    base.create_profile("P", responses)
    t = time.perf_counter()
    for row in rows[:args.baseline_n]:
        base.add_rating("P", row["instance"], row["model_response"], row["user_response"],
                        strategy=row["strategy"])
    per_rating = (time.perf_counter() - t) / args.baseline_n
    base.close()
    baseline_total = per_rating * args.n

    inserts = []  # (wall, cpu) per run, each into a fresh bank
    for k in range(args.repeat):
        bank_path = tmp / ("bank.sqlite3" if k == 0 else f"insert{k}.sqlite3")
        bank = DiscrepancyBank(bank_path)
        bank.create_profile("P", responses)
        t, c = time.perf_counter(), time.process_time()
        added = bank.add_ratings("P", rows)
        inserts.append((time.perf_counter() - t, time.process_time() - c))
        assert added == args.n, added
        if k:
            bank.close()
            bank_path.unlink()
    bank = DiscrepancyBank(tmp / "bank.sqlite3")
    insert_s, insert_cpu = statistics.median(w for w, _ in inserts), statistics.median(
        c for _, c in inserts)

    rng = random.Random(1)
    queries = [rng.choice(responses) for _ in range(args.lookups)]
    times = []
    for q in queries:
        t = time.perf_counter()
        bank.candidate_set("P", q)
        times.append(time.perf_counter() - t)
    times.sort()
    p50 = times[len(times) // 2] * 1000
    p99 = times[int(len(times) * 0.99)] * 1000

    trips = []  # (export wall, import wall, cpu) per run
    for k in range(args.repeat):
        path = tmp / f"export{k}.json.gz"
        t, c = time.perf_counter(), time.process_time()
        export_native(bank, "P", path)
        export_s = time.perf_counter() - t
        fresh = DiscrepancyBank(tmp / f"fresh{k}.sqlite3")
        t2 = time.perf_counter()
        report = import_file(fresh, path, "P")
        trips.append((export_s, time.perf_counter() - t2, time.process_time() - c))
        assert report.added == args.n
        assert fresh.counts("P") == bank.counts("P")
        fresh.close()
    size_mib = path.stat().st_size / 2**20
    export_s = statistics.median(e for e, _, _ in trips)
    import_s = statistics.median(i for _, i, _ in trips)
    trip_s = statistics.median(e + i for e, i, _ in trips)
    round_trip_cpu = statistics.median(c for _, _, c in trips)
    bank.close()

    def timed(fn, reps=3):
        """Median (wall, cpu) over `reps` runs of fn()."""
        runs = []
        for _ in range(reps):
            t, c = time.perf_counter(), time.process_time()
            fn()
            runs.append((time.perf_counter() - t, time.process_time() - c))
        return sorted(runs)[reps // 2]

    def open_and_close(check):
        DiscrepancyBank(tmp / "bank.sqlite3", check=check).close()

    def pragma(name):
        con = sqlite3.connect(tmp / "bank.sqlite3")
        assert con.execute(f"PRAGMA {name}").fetchone()[0] == "ok"
        con.close()

    open_checked = timed(lambda: open_and_close(True))
    open_unchecked = timed(lambda: open_and_close(False))
    quick = timed(lambda: pragma("quick_check"))
    full = timed(lambda: pragma("integrity_check"))
    bank_mib = (tmp / "bank.sqlite3").stat().st_size / 2**20

    shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, load "
          f"average {load:.1f}, Python {platform.python_version()}, SQLite "
          f"{sqlite3.sqlite_version}; wall times, CPU time of this process in brackets")
    runs = ", ".join(f"{w:.2f}" for w, _ in inserts)
    print(f"insert {args.n:,} ratings, batched add_ratings: median {insert_s:.2f} s "
          f"[cpu {insert_cpu:.2f} s] (runs {runs}) (target <= 3 s) | baseline one transaction per rating: {per_rating * 1000:.3f} ms "
          f"each x {args.n:,} = {baseline_total:.1f} s (measured on {args.baseline_n:,}) | "
          f"speed-up x{baseline_total / insert_s:.1f}")
    print(f"candidate_set over {args.lookups:,} lookups: p50 {p50:.3f} ms, p99 {p99:.3f} ms "
          f"(target p99 <= 1 ms)")
    runs = ", ".join(f"{e + i:.2f}" for e, i, _ in trips)
    print(f"native export {export_s:.2f} s ({size_mib:.1f} MiB gzip) + "
          f"import into a fresh bank {import_s:.2f} s: median round trip {trip_s:.2f} s "
          f"[cpu {round_trip_cpu:.2f} s] (runs {runs}) "
          f"(target <= 5 s) | x{trip_s / insert_s:.1f} the batched insert")
    print(f"open the {args.n:,}-rating bank ({bank_mib:.1f} MiB) with the damage check: "
          f"{open_checked[0]:.3f} s [cpu {open_checked[1]:.3f} s] | without: "
          f"{open_unchecked[0]:.3f} s [cpu {open_unchecked[1]:.3f} s] | PRAGMA quick_check "
          f"alone {quick[0]:.3f} s [cpu {quick[1]:.3f} s], integrity_check {full[0]:.3f} s "
          f"[cpu {full[1]:.3f} s] (medians of 3)")
    ok = insert_s <= 3 and p99 <= 1 and trip_s <= 5
    print("all targets met" if ok else "TARGET MISSED")


if __name__ == "__main__":
    main()
