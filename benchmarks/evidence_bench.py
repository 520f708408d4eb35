"""Evidence-rule build time: BLAS on one thread against BLAS's own thread count.

After every bank change the engine rebuilds the evidence rule (cm/evidence.py): 5 cross-fitted
logistic regressions, the leave-one-out grid, one final fit. A chat reply right after a rating
waits for it. This builds the rule on N rated queries of a dataset (MiniLM embeddings; the
model's answer y' is drawn, agreeing with the label 30 % of the time, since the build's cost does
not depend on what the model said) in two ways, alternating, in the same run:
- baseline: numpy's and scikit-learn's BLAS with their own thread count (`one_blas_thread`
  replaced by a no-op, as the code ran before it existed);
- one thread: the code as it is.

`--busy K` starts K processes that spin on the CPU during the measurement, as llama.cpp's
decoding or any other program would beside the app.

    python3 benchmarks/evidence_bench.py [--dataset ../shared/datasets/banking77/large.jsonl]
                                         [--sizes 100,500] [--busy 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cm_desktop.cm import baselines  # noqa: E402
from cm_desktop.cm.evaluate import counts_matrix  # noqa: E402
from cm_desktop.cm.evidence import EvidenceRule, response_text  # noqa: E402
from cm_desktop.cm.retrieval import RatingIndex, default_embedder  # noqa: E402
from cm_desktop.datasets import load_dataset  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _spin() -> None:
    while True:
        pass


def simulated_bank(dataset: Path, size: int, seed: int, embedder):
    """`size` rated queries of a dataset, drawn by seed: (responses, texts, their embeddings, the
    responses' text embeddings, user answers, model answers). The model's answer agrees with the
    label 30 % of the time: what a build costs does not depend on what the model said."""
    records = load_dataset(dataset)
    responses = sorted({r["label"] for r in records})
    pos = {y: i for i, y in enumerate(responses)}
    rng = np.random.default_rng(seed)
    picked = [records[i] for i in rng.permutation(len(records))[:size]]
    texts = [r["input"] for r in picked]
    users = np.array([pos[r["label"]] for r in picked])
    agree = rng.random(len(picked)) < 0.3
    models = np.where(agree, users, rng.integers(0, len(responses), len(picked)))
    return (responses, texts, embedder.encode(texts),
            embedder.encode([response_text(y) for y in responses]), users, models)


def build_seconds(index: RatingIndex, response_vecs: np.ndarray, blas_own_threads: bool) -> float:
    own = baselines.one_blas_thread
    if blas_own_threads:
        baselines.one_blas_thread = contextlib.nullcontext
    try:
        t0 = time.perf_counter()
        EvidenceRule(index, counts_matrix(index), response_vecs=response_vecs)
        return time.perf_counter() - t0
    finally:
        baselines.one_blas_thread = own


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path,
                    default=SHARED / "datasets" / "banking77" / "large.jsonl")
    ap.add_argument("--sizes", default="100,500")
    ap.add_argument("--busy", type=int, default=1, help="spinning processes beside the build")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    embedder = default_embedder()
    bank = simulated_bank(args.dataset, max(sizes), args.seed, embedder)
    responses, texts, vecs, response_vecs, users, models = bank

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()}), "
          f"Python {platform.python_version()}, numpy {np.__version__}; "
          f"load average before: {os.getloadavg()[0]:.1f}; {args.busy} spinning process(es)")
    print(f"dataset: {args.dataset.parent.name}/{args.dataset.name}, {len(responses)} responses")
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for p in spinners:
        p.start()
    try:
        for size in sizes:
            index = RatingIndex.from_arrays(responses, texts[:size], models[:size],
                                            users[:size], vecs[:size], embedder)
            runs: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(args.repeat):
                for own_threads in (True, False):
                    runs[own_threads].append(build_seconds(index, response_vecs, own_threads))
            base, one = statistics.median(runs[True]), statistics.median(runs[False])
            print(f"{size} ratings: BLAS own threads {base:.2f} s "
                  f"({', '.join(f'{s:.2f}' for s in runs[True])}), one thread {one:.2f} s "
                  f"({', '.join(f'{s:.2f}' for s in runs[False])}) -> {base / one:.1f}x")
    finally:
        for p in spinners:
            p.terminate()


if __name__ == "__main__":
    main()
