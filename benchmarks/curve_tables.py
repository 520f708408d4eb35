"""Markdown tables from `cm curve --json` results (for benchmarks/RESULTS.md).

    python benchmarks/curve_tables.py docs/curves/*.json [--sizes 25,50,100,200,500]

Per file and order: accuracy at each size for every method, the margin of the best CM rule over
the best of model / kNN / logreg (and over logreg-tuned, where the file has it), and how many ratings the coverage order needs to reach the
random order's accuracy at the largest size (linear interpolation between measured sizes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BASELINES = ("model", "knn", "logreg")


def _row(rows, order, method, size):
    for r in rows:
        if (r["order"], r["method"], r["size"]) == (order, method, size):
            return r
    return None


def _acc(rows, order, method, size):
    r = _row(rows, order, method, size)
    return None if r is None else r["accuracy"]


def ratings_to_reach(rows, order: str, method: str, target: float) -> float | None:
    """Smallest (interpolated) size at which `method` in `order` reaches `target`."""
    pts = sorted((r["size"], r["accuracy"]) for r in rows
                 if r["order"] == order and r["method"] == method)
    prev = None
    for size, acc in pts:
        if acc >= target - 1e-12:
            if prev is None or prev[1] >= acc:
                return float(size)
            s0, a0 = prev
            return s0 + (target - a0) / (acc - a0) * (size - s0)
        prev = (size, acc)
    return None


def table(result: dict, sizes: list[int], cm_method: str) -> str:
    rows = result["rows"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    orders = list(dict.fromkeys(r["order"] for r in rows))
    name = Path(result["dataset"]).parent.name
    mp = result.get("model_passes", {})
    out = [f"#### {name}: pool {result.get('pool')}, {result['n']} held-out queries, "
           f"{result.get('responses')} responses; {mp.get('seconds_per_pass', float('nan')):.2f} "
           f"s per model pass, 1 pass per query"
           + (f"; mean of {result['repeats']} simulated users (rating orders), ± their sd"
              if result.get("repeats", 1) > 1 else ""), ""]
    for order in orders:
        have = [s for s in sizes if _acc(rows, order, methods[0], s) is not None]
        out.append(f"| {order} order | " + " | ".join(str(s) for s in have) + " |")
        out.append("|---|" + "---:|" * len(have))
        for m in methods:
            cells = []
            for s in have:
                r = _row(rows, order, m, s)
                sd = f" ± {r['accuracy_sd']:.3f}" if r.get("repeats", 1) > 1 and m != "model" else ""
                cells.append(f"{r['accuracy']:.3f}{sd}")
            out.append(f"| {m} | " + " | ".join(cells) + " |")
        margins = []
        for s in have:
            base = max(_acc(rows, order, b, s) for b in BASELINES if b in methods)
            margins.append(f"{100 * (_acc(rows, order, cm_method, s) - base):+.1f}")
        out.append(f"| {cm_method} − best baseline (points) | " + " | ".join(margins) + " |")
        if "logreg-tuned" in methods:   # logistic regression on the encoder CM reads through
            tuned = [f"{100 * (_acc(rows, order, cm_method, s) - _acc(rows, order, 'logreg-tuned', s)):+.1f}"
                     for s in have]
            out.append(f"| {cm_method} − logreg-tuned (points) | " + " | ".join(tuned) + " |")
        out.append("")
    if {"random", "coverage"} <= set(orders):
        top = max(r["size"] for r in rows if r["order"] == "random")
        for m in (cm_method, "knn", "logreg"):
            target = _acc(rows, "random", m, top)
            need = ratings_to_reach(rows, "coverage", m, target)
            text = f"{need:.0f}" if need is not None else f"not reached by {top}"
            out.append(f"- {m}: random order reaches {target:.3f} at {top} ratings; coverage order "
                       f"reaches it at {text} ratings"
                       + (f" ({need / top:.2f}× as many)" if need is not None else ""))
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--sizes", default="25,50,100,200,500")
    ap.add_argument("--cm", default="cm-evidence", help="the CM rule the margin is reported for")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    for f in args.files:
        print(table(json.loads(Path(f).read_text()), sizes, args.cm))


if __name__ == "__main__":
    main()
