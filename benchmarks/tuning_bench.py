"""What the encoder tuned on the bank costs, against the evidence rule's own build in the same run.

From `encoder_tuning.TUNE_PER_RESPONSE` ratings per response the engine's first decision after the
bank outgrew its tuning tunes MiniLM on the bank. This measures, on N rated queries of a dataset (the
model's answer y' drawn, agreeing with the label 30 % of the time; the cost does not depend on
it), in the same run:
- baseline: the evidence rule's build on the frozen encoder (what every refresh costs anyway);
- tune: `tune_encoder` on the N ratings;
- load: reading a kept tuning back (`load_tuned`: a restart or a model switch);
- re-encode: reading the N rated queries through the tuned encoder (once per tuning);
each as seconds and as a ratio to the baseline.

    python3 benchmarks/tuning_bench.py [--dataset ../shared/datasets/banking77/large.jsonl]
                                       [--sizes 300,500] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.evidence_bench import SHARED, cpu_model, simulated_bank  # noqa: E402
from cm_desktop.cm import encoder_tuning as et  # noqa: E402
from cm_desktop.cm.evaluate import counts_matrix  # noqa: E402
from cm_desktop.cm.evidence import EvidenceRule  # noqa: E402
from cm_desktop.cm.retrieval import MiniLMEmbedder, RatingIndex  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path,
                    default=SHARED / "datasets" / "banking77" / "large.jsonl")
    ap.add_argument("--sizes", default="300,500")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    embedder = MiniLMEmbedder()
    bank = simulated_bank(args.dataset, max(sizes), args.seed, embedder)
    responses, texts, vecs, response_vecs, users, models = bank

    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()}), "
          f"Python {platform.python_version()}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); load average before: {os.getloadavg()[0]:.1f}")
    print(f"dataset: {args.dataset.parent.name}/{args.dataset.name}, {len(responses)} responses")
    with tempfile.TemporaryDirectory() as tmp:
        kept = Path(tmp) / "tuned.pt"
        for size in sizes:
            index = RatingIndex.from_arrays(responses, texts[:size], models[:size], users[:size],
                                            vecs[:size], embedder)
            runs: dict[str, list[float]] = {"build": [], "tune": [], "load": [], "encode": []}
            for _ in range(args.repeat):
                runs["build"].append(timed(lambda: EvidenceRule(
                    index, counts_matrix(index), response_vecs=response_vecs))[1])
                tuned, secs = timed(lambda: et.tune_encoder(embedder, texts[:size], users[:size],
                                                            len(responses)))
                runs["tune"].append(secs)
                et.save_tuned(tuned, embedder.name, responses, kept)
                runs["load"].append(timed(lambda: et.load_tuned(embedder, responses, kept))[1])
                runs["encode"].append(timed(lambda: tuned.encode(texts[:size]))[1])
            med = {k: statistics.median(v) for k, v in runs.items()}
            print(f"{size} ratings: rule build (baseline) {med['build']:.2f} s; "
                  + "; ".join(f"{k} {med[k]:.2f} s ({med[k] / med['build']:.1f}x)"
                              for k in ("tune", "load", "encode"))
                  + "; runs: " + ", ".join(f"{k} " + "/".join(f"{s:.2f}" for s in v)
                                           for k, v in runs.items()))


if __name__ == "__main__":
    main()
