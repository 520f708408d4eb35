"""CM engine cost: Memorable Vanilla vs Vanilla, and Consistent + memory passes per query.

    python3 benchmarks/cm_bench.py [--bank-size 40] [--queries 20] [--threads 2]

Builds a throwaway bank by estimating `--bank-size` massive_scenario instances (large.jsonl) with
the embedded Gemma, then on `--queries` held-out inputs (small.jsonl) times `engine.decide` for
Vanilla without memory and with each memory variant (each variant its own loop over the same
queries, so every one pays the same KV prefix reuse; Vanilla is run before and after and averaged
to cancel drift on a shared machine). Targets: each Memorable Vanilla <= 1.3x Vanilla's
time per query; Consistent + memory <= 4 model passes per query (the seed pipeline: 6+).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / ".." / "shared" / "datasets" / "massive_scenario"


def _records(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bank-size", type=int, default=40)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scoring-rules", metavar="DATASET",
                    help="instead: vanilla accuracy of raw / length-normalised / calibrated scores "
                         "on --queries inputs of DATASET's small.jsonl (no bank)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.scoring_rules:
        return scoring_rules(args)

    from bank_store import DiscrepancyBank
    from cm_desktop.backends import default_model_path, load_backend
    from cm_desktop.cm.engine import CMEngine
    from cm_desktop.cm.estimate import ensure_profile
    from cm_desktop.cm.evaluate import held_out_queries

    large, small = _records(DATA / "large.jsonl"), _records(DATA / "small.jsonl")
    backend = load_backend("llama_cpp", model_path=str(default_model_path()),
                           n_threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        bank = DiscrepancyBank(Path(tmp) / "bench.sqlite3")
        ensure_profile(bank, "bench", [r["label"] for r in large])
        est = CMEngine(backend, bank, "bench", variant="none", tune=False)
        t0 = time.perf_counter()
        for rec in random.Random(40).sample(large, args.bank_size):
            y = est.propose(rec["input"]).model_response
            bank.add_rating("bench", rec["input"], y, rec["label"], source="estimated")
        print(f"bank: {args.bank_size} estimated ratings in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        queries = [q["input"] for q in held_out_queries(small, bank, "bench", args.queries, seed=7)]

        def run(strategy: str, variant: str) -> tuple[float, float]:
            engine = CMEngine(backend, bank, "bench", strategy=strategy, variant=variant)
            engine.warm_up()
            times, passes = [], []
            for q in queries:
                t = time.perf_counter()
                trace = engine.decide(q)
                times.append(time.perf_counter() - t)
                passes.append(trace.passes)
            return statistics.mean(times), statistics.mean(passes)

        v1, _ = run("vanilla", "none")
        memorable = {v: run("vanilla", v) for v in ("paper", "marginal", "instance")}
        v2, _ = run("vanilla", "none")
        vanilla = (v1 + v2) / 2
        consistent = {v: run("consistent", v) for v in ("none", "paper", "marginal", "instance")}
    backend.close()

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"{args.queries} queries, bank {args.bank_size}, threads {args.threads}")
    print(f"Vanilla: {vanilla * 1000:.0f} ms/query (runs: {v1 * 1000:.0f}, {v2 * 1000:.0f})")
    print("| what | ms/query | passes/query | vs Vanilla | target |")
    print("|---|---:|---:|---:|---|")
    for v, (t, p) in memorable.items():
        print(f"| Memorable Vanilla ({v}) | {t * 1000:.0f} | {p:.2f} | {t / vanilla:.2f}x | <= 1.3x |")
    for v, (t, p) in consistent.items():
        print(f"| Consistent + {v} | {t * 1000:.0f} | {p:.2f} | {t / vanilla:.2f}x | <= 4 passes (seed: 6+) |")
    return 0


def scoring_rules(args) -> int:
    """Which p(y'|x) to keep: the four ways of turning candidate log-likelihoods into a choice."""
    import numpy as np

    from cm_desktop.backends import default_model_path, load_backend
    from cm_desktop.cm import strategies as st
    from cm_desktop.cm.engine import CMEngine

    data = ROOT / ".." / "shared" / "datasets" / args.scoring_rules
    labels = sorted({r["label"] for r in _records(data / "large.jsonl")})
    recs = _records(data / "small.jsonl")
    random.Random(0).shuffle(recs)
    recs = recs[:args.queries]
    backend = load_backend("llama_cpp", model_path=str(default_model_path()),
                           n_threads=args.threads)
    texts = st.candidate_texts(labels)
    base = np.mean([backend.score(st.vanilla_prompt(labels, q), texts).logprob
                    for q in CMEngine.CONTENT_FREE], axis=0)
    hits = {"raw": 0, "length-normalised": 0, "calibrated": 0, "calibrated + normalised": 0}
    for r in recs:
        s = backend.score(st.vanilla_prompt(labels, r["input"]), texts)
        gold = labels.index(r["label"])
        hits["raw"] += int(np.argmax(s.logprob) == gold)
        hits["length-normalised"] += int(np.argmax(s.logprob / s.n_tokens) == gold)
        hits["calibrated"] += int(np.argmax(s.logprob - base) == gold)
        hits["calibrated + normalised"] += int(np.argmax((s.logprob - base) / s.n_tokens) == gold)
    backend.close()
    print(f"{args.scoring_rules}: vanilla accuracy on {len(recs)} queries of small.jsonl")
    for k, v in hits.items():
        print(f"| {k} | {v / len(recs):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
