"""CM accuracy with a bank from another model, after rebase, and with the current model's bank.

    python3 benchmarks/rebase_bench.py [--dataset banking77] [--bank-size 150] [--queries 120]
        [--quant Q3_K_S] [--threads 2] [--workdir /tmp/rebase_bench]

Two models with different fingerprints: the *current* model is the embedded Gemma 3 270M
(Q4_K_M) through llama.cpp; the *other* model is the same weights requantised offline to
`--quant` with llama.cpp's own quantiser (llama_model_quantize, --allow-requantize), so its y'
differ on some queries. A bank is estimated with the other model on `--bank-size` instances of
large.jsonl (seed 40); held-out queries come from small.jsonl (seed 1). Four banks, one engine
each, all answered by the current model (vanilla prompt scored once per query, shared):

- naive:   the other model's ratings used as if they were the current model's (the behaviour
           before fingerprints were compared: their fingerprint dropped);
- guarded: the other model's ratings as they are (their y' statistics do not steer, their (x, y)
           still vote as neighbours);
- rebased: after `rebase` (old ratings kept, current-model ratings added beside them);
- own:     only the current model's ratings (the rebased ones alone: what estimating the bank
           with the current model gives, since rebase asks it exactly as `cm estimate` does).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _records(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def requantise(src: Path, dest: Path, quant: str, threads: int) -> Path:
    """Write `src` requantised to `quant` with llama.cpp's quantiser (offline, once)."""
    if dest.exists():
        return dest
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant}")
    params.allow_requantize = True
    params.nthread = threads
    tmp = dest.with_suffix(".part")
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
    if rc != 0:
        raise SystemExit(f"llama_model_quantize failed ({rc})")
    tmp.replace(dest)
    return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="banking77")
    ap.add_argument("--bank-size", type=int, default=150)
    ap.add_argument("--queries", type=int, default=120)
    ap.add_argument("--quant", default="Q3_K_S")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", default="/tmp/rebase_bench")
    ap.add_argument("--json", metavar="OUT.json")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from bank_store import DiscrepancyBank
    from bank_store.rebase import rebase
    from cm_desktop.backends import default_model_path, load_backend
    from cm_desktop.cm.engine import CMEngine
    from cm_desktop.cm.estimate import ensure_profile
    from cm_desktop.cm.evaluate import macro_f1
    from cm_desktop.cm.retrieval import default_embedder

    data = ROOT / ".." / "shared" / "datasets" / args.dataset
    large, small = _records(data / "large.jsonl"), _records(data / "small.jsonl")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    gemma = default_model_path()
    other_path = requantise(gemma, work / f"gemma-3-270m-{args.quant}.gguf", args.quant,
                            args.threads)
    current = load_backend("llama_cpp", model_path=str(gemma),
                           n_threads=args.threads)
    other = load_backend("llama_cpp", model_path=str(other_path),
                         n_threads=args.threads)
    embedder = default_embedder()
    labels = [r["label"] for r in large]
    sample = random.Random(40).sample(large, args.bank_size)
    in_bank = {" ".join(r["input"].lower().split()) for r in sample}
    held = [r for r in small if " ".join(r["input"].lower().split()) not in in_bank]
    random.Random(1).shuffle(held)
    held = held[:args.queries]

    bank_path = work / f"bench-{args.bank_size}-{args.quant}.sqlite3"
    bank_path.unlink(missing_ok=True)
    bank = DiscrepancyBank(bank_path)
    t0 = time.perf_counter()
    ensure_profile(bank, "other", labels)
    est = CMEngine(other, bank, "other", variant="none", embedder=embedder, tune=False)
    other_ratings = []
    for i, rec in enumerate(sample):
        if i % 10 == 0:
            print(f"estimate {i}/{len(sample)} {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                  flush=True)
        y_other = est.propose(rec["input"]).model_response
        other_ratings.append({"instance": rec["input"], "model_response": y_other,
                              "user_response": rec["label"], "source": "estimated",
                              "strategy": "vanilla", "fingerprint": other.fingerprint})
    bank.add_ratings("other", other_ratings)
    est_s = time.perf_counter() - t0
    other.close()

    for name in ("naive", "guarded", "rebased", "own"):
        ensure_profile(bank, name, labels)
    bank.add_ratings("naive", [dict(r, fingerprint=None) for r in other_ratings])
    bank.add_ratings("guarded", other_ratings)
    bank.add_ratings("rebased", other_ratings)
    asker = CMEngine(current, bank, "rebased", variant="none", embedder=embedder, tune=False)
    t0 = time.perf_counter()
    report = rebase(bank, "rebased", current.fingerprint,
                    lambda x: asker.responses[asker.model_pass(x).model_index], strategy="vanilla",
                    progress=lambda d, n: print(f"rebase {d}/{n}", file=sys.stderr, flush=True)
                    if d % 10 == 0 else None)
    rebase_s = time.perf_counter() - t0
    bank.add_ratings("own", [{k: getattr(r, k) for k in ("instance", "model_response",
                                                         "user_response", "source", "strategy",
                                                         "fingerprint")}
                             for r in bank.ratings("rebased") if r.fingerprint == current.fingerprint])

    engines = {name: CMEngine(current, bank, name, variant="instance", embedder=embedder)
               for name in ("naive", "guarded", "rebased", "own")}
    for e in engines.values():
        e.warm_up()
    variants = ("none", "paper", "marginal", "instance")
    preds = {(name, v): [] for name in engines for v in variants}
    knn = {name: [] for name in engines}
    gold = [q["label"] for q in held]
    t0 = time.perf_counter()
    for i, q in enumerate(held):
        shared: dict = {}            # the vanilla prompt is the same for every bank: scored once
        for name, e in engines.items():
            outcome = e.model_pass(q["input"], shared=shared)
            for v in variants:
                preds[(name, v)].append(e.apply_memory(outcome, v, shared=shared).chosen)
            knn[name].append(e.nearest_response(q["input"])[0] or "")
        if (i + 1) % 10 == 0:
            print(f"{i + 1}/{len(held)} queries, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    eval_s = time.perf_counter() - t0

    def acc(p):
        return sum(a == b for a, b in zip(p, gold)) / len(gold)

    rows = []
    for name in engines:
        e = engines[name]
        row = {"bank": name, "counts_used": int(e.counts.sum()), "ratings": len(e.index),
               "params": e.params.to_dict(), "knn": acc(knn[name])}
        for v in variants:
            row[v] = acc(preds[(name, v)])
            row[f"{v}_f1"] = macro_f1(gold, preds[(name, v)])
        rows.append(row)
    agree_other = sum(r["model_response"] == r["user_response"] for r in other_ratings) / len(other_ratings)
    out = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "dataset": args.dataset, "bank_size": args.bank_size, "queries": len(held),
        "current": current.fingerprint, "other": other.fingerprint, "quant": args.quant,
        "other_agreement_with_labels": agree_other,
        "rebase": {"added": report.added, "changed_y_prime": report.changed,
                   "seconds": rebase_s},
        "estimate_seconds": est_s, "eval_seconds": eval_s, "rows": rows,
    }
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print("\n| bank | counts used | model alone | paper | marginal | instance | knn |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['bank']} | {r['counts_used']} | {r['none']:.3f} | {r['paper']:.3f} | "
              f"{r['marginal']:.3f} | {r['instance']:.3f} | {r['knn']:.3f} |")
    current.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
