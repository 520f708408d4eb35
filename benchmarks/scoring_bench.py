"""Constrained scoring of a response set: our llama_cpp backend against the naive way.

naive: for every candidate, clear the KV cache and evaluate prompt + candidate from scratch
       (LlamaCppBackend.score_uncached, the same model object, same tokens and sums).
ours:  LlamaCppBackend.score: prompt once, KV prefix kept across queries, all candidates decoded
       together in branch sequences with logits only where needed.

Prints seconds per query for both, the ratio, and whether the choices (argmax) agree.
    python benchmarks/scoring_bench.py --queries 20 --naive-queries 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cm_desktop.backends import default_model_path, load_backend  # noqa: E402
from cm_desktop.cm import strategies as st  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"


def build_prompt(labels: list[str], text: str) -> str:
    # The fixed part (instruction + response list) comes first so consecutive queries share it.
    return ("Classify the user's message into exactly one of these labels:\n"
            + "\n".join(labels) + "\n\nMessage: " + text.replace("\n", " ") + "\nLabel:")


def load(dataset: str, n: int) -> tuple[list[str], list[dict]]:
    rows = [json.loads(line) for line in open(SHARED / dataset / "small.jsonl")]
    labels = sorted({r["label"] for r in rows})
    rng = np.random.default_rng(0)
    picks = rng.choice(len(rows), size=min(n, len(rows)), replace=False)
    return labels, [rows[i] for i in picks]


def prompt_throughput(backend, prompt: str, repeats: int = 3) -> float:
    """Tokens per second of evaluating a whole prompt from a cold cache (the best of a few: the
    machine is shared, and the physical limit is what the hardware can do when it gets the cores)."""
    n = len(backend._token_ids(prompt, prompt=True))
    best = float("inf")
    for _ in range(repeats):
        backend._reset_cache()
        t = time.perf_counter()
        backend._ensure_prompt(backend._token_ids(prompt, prompt=True), None)
        best = min(best, time.perf_counter() - t)
    backend._reset_cache()
    return n / best


def run(backend, dataset: str, n_queries: int, n_naive: int, engine_prompt: bool = False) -> dict:
    labels, rows = load(dataset, n_queries)
    if engine_prompt:   # what `cm eval --strategies vanilla` scores: the engine's own prompt
        prompt_of = lambda text: st.vanilla_prompt(labels, text)   # noqa: E731
        cands = st.candidate_texts(labels)
    else:
        prompt_of = lambda text: build_prompt(labels, text)   # noqa: E731
        cands = [" " + lab for lab in labels]
    tok_per_s = prompt_throughput(backend, prompt_of(rows[0]["input"]))
    backend._reset_cache()  # start cold: the first query pays for the whole prompt
    backend.score(prompt_of("warm up"), cands)    # ... and is left out of the physical limit
    before = dict(backend.stats)
    ours_t, ours_choice = [], []
    for r in rows:
        t = time.perf_counter()
        s = backend.score(prompt_of(r["input"]), cands)
        ours_t.append(time.perf_counter() - t)
        ours_choice.append(s.best)
    tail = (backend.stats["prompt_tokens_evaluated"] - before["prompt_tokens_evaluated"]) / len(rows)
    trie = (backend.stats["candidate_rows_decoded"] - before["candidate_rows_decoded"]) / len(rows)
    build_prompt_of = prompt_of
    naive_t, naive_choice, max_diff = [], [], 0.0
    for r in rows[:n_naive]:
        p = build_prompt_of(r["input"])
        t = time.perf_counter()
        u = backend.score_uncached(p, cands)
        naive_t.append(time.perf_counter() - t)
        naive_choice.append(u.best)
        max_diff = max(max_diff, float(np.abs(u.logprob - backend.score(p, cands).logprob).max()))
    agree = sum(a == b for a, b in zip(ours_choice, naive_choice))
    res = {"dataset": dataset, "responses": len(labels), "queries": len(rows),
           "naive_queries": len(naive_t), "ours_s_per_query": float(np.mean(ours_t)),
           "ours_first_query_s": ours_t[0], "naive_s_per_query": float(np.mean(naive_t)),
           "speedup": float(np.mean(naive_t) / np.mean(ours_t)),
           "choices_identical": f"{agree}/{len(naive_t)}", "max_abs_logprob_diff": max_diff,
           "prompt_tokens": len(backend.scoring_tokens(build_prompt_of(rows[0]["input"]),
                                                       cands).prompt),
           "tail_tokens_per_query": tail, "trie_rows_per_query": trie,
           "prompt_tokens_per_s": tok_per_s,
           "physical_limit_s_per_query": (tail + trie) / tok_per_s}
    res["vs_limit"] = res["ours_s_per_query"] / res["physical_limit_s_per_query"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--naive-queries", type=int, default=5,
                    help="the naive way is slow; time it on the first N queries only")
    ap.add_argument("--datasets", default="massive_scenario,banking77")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--profile", action="store_true", help="pyinstrument profile of ours")
    ap.add_argument("--engine-prompt", action="store_true",
                    help="score the engine's vanilla prompt and candidates (what cm eval scores)")
    args = ap.parse_args()
    backend = load_backend("llama_cpp", model_path=str(default_model_path()),
                           n_threads=args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"threads={backend.n_threads}, path={'branches' if backend.batched else 'sequential'}")
    for ds in args.datasets.split(","):
        if args.profile:
            from pyinstrument import Profiler
            prof = Profiler()
            prof.start()
        res = run(backend, ds, args.queries, args.naive_queries, args.engine_prompt)
        if args.profile:
            prof.stop()
            print(prof.output_text(unicode=False, color=False, show_all=False))
        print(f"{ds}: {res['responses']} responses, prompt {res['prompt_tokens']} tokens | "
              f"naive {res['naive_s_per_query']:.3f} s/query ({res['naive_queries']} queries) | "
              f"ours {res['ours_s_per_query']:.3f} s/query ({res['queries']} queries, first "
              f"{res['ours_first_query_s']:.3f} s) | speed-up {res['speedup']:.1f}x | "
              f"choices identical {res['choices_identical']} | max |dlogp| "
              f"{res['max_abs_logprob_diff']:.3f}")
        print(f"  physical limit {res['physical_limit_s_per_query']:.3f} s/query "
              f"({res['tail_tokens_per_query']:.1f} prompt-tail tokens + "
              f"{res['trie_rows_per_query']:.1f} trie rows at {res['prompt_tokens_per_s']:.0f} "
              f"prompt tokens/s); ours is {res['vs_limit']:.2f}x the limit")
    backend.close()


if __name__ == "__main__":
    main()
