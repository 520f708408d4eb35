"""Chat streaming: tokens/s through our backend layer vs raw llama-cpp-python, same settings.

Both stream the same messages greedily (temperature 0, same seed, same max_tokens) from their own
Llama object on the same GGUF with the same n_ctx / n_batch / n_threads; runs alternate (ours,
raw, raw, ours, ...) so load on a shared machine hits both alike. Prints the ratio of medians.
    python benchmarks/stream_bench.py --runs 6 --max-tokens 96
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cm_desktop.backends import default_model_path, load_backend  # noqa: E402

MESSAGES = [{"role": "user", "content": "Write a short paragraph about the sea."}]


def timed(stream) -> tuple[str, float]:
    t = time.perf_counter()
    parts = [piece for piece in stream]
    return "".join(parts), time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    import llama_cpp

    path = str(default_model_path())
    # chat_format given explicitly: both sides then stream through the same Gemma chat template
    # (without it the base model is served as a plain transcript, a different prompt).
    # repeat_penalty 1.0 on our side: raw create_chat_completion's default, so both sample alike
    ours = load_backend("llama_cpp", model_path=path, n_threads=args.threads,
                        chat_format="gemma", repeat_penalty=1.0)
    raw = llama_cpp.Llama(model_path=path, n_ctx=4096, n_batch=512, n_ubatch=ours.options.n_ubatch,
                          n_threads=args.threads, n_threads_batch=args.threads, seed=0,
                          verbose=False, chat_format="gemma")

    def run_raw():
        chunks = raw.create_chat_completion(MESSAGES, stream=True, max_tokens=args.max_tokens,
                                            temperature=0.0, seed=0)
        return timed(c["choices"][0]["delta"].get("content") or "" for c in chunks)

    def run_ours():
        return timed(ours.stream_chat(MESSAGES, max_tokens=args.max_tokens, temperature=0.0))

    run_raw(), run_ours()  # warm both (first call evaluates the prompt, pages in the weights)
    rates = {"ours": [], "raw": []}
    texts = {}
    for r in range(args.runs):
        order = [("ours", run_ours), ("raw", run_raw)]
        if r % 2:
            order.reverse()
        for name, fn in order:
            text, secs = fn()
            n = len(raw.tokenize(text.encode(), add_bos=False))
            rates[name].append(n / secs)
            texts[name] = text
    ratio = statistics.median(rates["ours"]) / statistics.median(rates["raw"])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, threads={args.threads}, "
          f"runs={args.runs}, max_tokens={args.max_tokens}")
    print(f"raw llama-cpp-python: {statistics.median(rates['raw']):.1f} tok/s (median; "
          f"{', '.join(f'{x:.1f}' for x in rates['raw'])})")
    print(f"ours (stream_chat):   {statistics.median(rates['ours']):.1f} tok/s (median; "
          f"{', '.join(f'{x:.1f}' for x in rates['ours'])})")
    print(f"ratio ours/raw: {ratio:.3f}  same text: {texts['ours'] == texts['raw']}")
    ours.close()
    raw.close()


if __name__ == "__main__":
    main()
