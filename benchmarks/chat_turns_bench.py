"""Time to first token across the turns of one conversation, with and without the kept prefix.

Each turn does what the app does: the user's message is scored against the sample profile's 77
responses (sequence 0 of the cache), then the reply streams from the chat sequence, greedy, with
the whole conversation as its prompt. Time to first token is measured around the chat call only.
"kept": the chat sequence keeps the conversation between turns (the backend's behaviour).
"baseline": the chat sequence is emptied before each turn (the earlier behaviour, where scoring
and chat shared one sequence and each overwrote the other), on the same conversation text.
Runs alternate (kept, baseline, baseline, kept, ...) so load on a shared machine hits both alike.
    python benchmarks/chat_turns_bench.py --runs 3 --turns 10 --max-tokens 24
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cm_desktop.backends import default_model_path, load_backend  # noqa: E402
from cm_desktop.cm import strategies as st  # noqa: E402

QUESTIONS = [
    "My new card has not arrived yet. When will it come?",
    "I ordered it two weeks ago. Is that normal?",
    "Can you track where it is?",
    "What if it was stolen from my mailbox?",
    "How do I freeze the old card in the meantime?",
    "Will my direct debits still work after the replacement?",
    "Do I have to pay for a replacement card?",
    "Can I use Apple Pay until the new card arrives?",
    "How do I activate the new card when it comes?",
    "Thanks. Can I change my PIN afterwards too?",
    "One more thing: is there a fee for cash withdrawals abroad?",
    "And what is the daily withdrawal limit?",
]


def run_conversation(backend, responses, turns, max_tokens, *, keep, history_texts=None):
    """Per turn: (seconds to the first piece, prompt tokens). Returns those and the replies."""
    candidates = st.candidate_texts(responses)
    backend._forget(backend.chat_seq, 0)   # a new conversation
    history, out, replies = [], [], []
    for turn in range(turns):
        question = QUESTIONS[turn % len(QUESTIONS)]
        backend.score(st.vanilla_prompt(responses, question), candidates)
        history.append({"role": "user", "content": question})
        if not keep:
            backend._forget(backend.chat_seq, 0)
        n_prompt = len(backend.chat_prompt_tokens(history))
        t0 = time.perf_counter()
        stream = backend.stream_chat(history, max_tokens=max_tokens, temperature=0.0)
        pieces, first = [], None
        for piece in stream:
            if first is None:
                first = time.perf_counter() - t0
            pieces.append(piece)
        reply = history_texts[turn] if history_texts else "".join(pieces)
        replies.append(reply)
        history.append({"role": "assistant", "content": reply})
        out.append((first if first is not None else time.perf_counter() - t0, n_prompt))
    return out, replies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    responses = [r for r in (ROOT / "resources" / "sample_profile" / "responses.txt")
                 .read_text().splitlines() if r.strip()]
    backend = load_backend("llama_cpp", model_path=str(default_model_path()),
                           n_threads=args.threads)
    # warm: page in the weights, score the profile's prompt prefix once
    backend.score(st.vanilla_prompt(responses, "hello"), st.candidate_texts(responses))
    _, replies = run_conversation(backend, responses, args.turns, args.max_tokens, keep=True)
    ttft = {"kept": [[] for _ in range(args.turns)], "baseline": [[] for _ in range(args.turns)]}
    tokens = []
    for r in range(args.runs):
        order = ["kept", "baseline"] if r % 2 == 0 else ["baseline", "kept"]
        for mode in order:
            res, _ = run_conversation(backend, responses, args.turns, args.max_tokens,
                                      keep=mode == "kept", history_texts=replies)
            for t, (secs, n) in enumerate(res):
                ttft[mode][t].append(secs)
            tokens = [n for _, n in res]
    load = os.getloadavg()
    print(f"date: {datetime.date.today().isoformat()}  machine: {platform.machine()}, "
          f"{os.cpu_count()} cpus, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}, "
          f"threads={args.threads}, runs={args.runs}, max_tokens={args.max_tokens}")
    print("turn  prompt tokens  kept TTFT s  baseline TTFT s")
    med = {m: [statistics.median(x) for x in ttft[m]] for m in ttft}
    for t in range(args.turns):
        print(f"{t + 1:4d}  {tokens[t]:13d}  {med['kept'][t]:11.3f}  {med['baseline'][t]:15.3f}")
    last = args.turns - 1
    print(f"turn {args.turns} / turn 1 TTFT: kept {med['kept'][last] / med['kept'][0]:.2f}x  "
          f"baseline {med['baseline'][last] / med['baseline'][0]:.2f}x  (target kept <= 1.5x)")
    print(f"turn {args.turns}: kept / baseline = {med['kept'][last] / med['baseline'][last]:.3f}")
    backend.close()


if __name__ == "__main__":
    main()
