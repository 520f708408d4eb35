"""Answer quality of the chat on the embedded model: key facts stated with and without guidance,
prompt leaks, the follow-up decision rule, and time to first token over a conversation.

    python3 benchmarks/answer_bench.py --queries 100 --threads 2 [--bank-file B] [--json OUT]

1. A bank for the Banking77 sample profile is estimated from banking77/large.jsonl (the paper's
   step 1, `--bank-proportion`); with --bank-file an earlier bank is reused.
2. `--queries` held-out queries from banking77/small.jsonl: CM decides (`--variant`: the app's
   memory by default), then the model writes the reply twice, with the chosen response's guidance
   (resources/) and without.
   A reply *states a key fact* when every word of one of the chosen response's key facts is in it
   (case, punctuation and word order ignored). A reply *leaks* when the raw model text contains
   the prompt's note labels, its instruction or a role marker (counted before and after the
   reply cleaner that the app and `cm chat` use).
3. The follow-ups (benchmarks/data/followups.jsonl, written for this: pairs that keep the thread
   and pairs that change the subject): the second turn decided by each of chat.FOLLOWUP_RULES;
   share with the right meaning.
4. One conversation of `--turns` unrelated held-out queries: time to the first reply token at
   each turn, and how many turns were decided right (`--followup-rule` decides the later ones).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO / ".." / "shared" / "datasets" / "banking77"
FOLLOWUPS = REPO / "benchmarks" / "data" / "followups.jsonl"


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9%]+", text.lower().replace("–", "-")))


def states_key_fact(reply: str, facts) -> bool:
    got = words(reply)
    return any(words(f) and words(f) <= got for f in facts)


def raw_and_shown(backend, messages, max_tokens):
    """The model's own text and what the reply cleaner shows, from one generation."""
    from cm_desktop.cm import chat

    raw: list[str] = []

    def tee():
        for piece in backend.stream_chat(messages, max_tokens=max_tokens, temperature=0.0):
            raw.append(piece)
            yield piece

    shown = "".join(chat.clean_reply(tee()))
    return "".join(raw), shown


def main() -> int:
    from cm_desktop.cm import DEFAULT_VARIANT, VARIANTS, chat

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bank-proportion", type=float, default=0.03,
                    help="estimate this share of banking77/large.jsonl into the bank (0: use the "
                    "bank as it is)")
    ap.add_argument("--bank-file", help="reuse (or create) this bank instead of a temporary one")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--followup-rule", default=chat.FOLLOWUP_RULE, choices=chat.FOLLOWUP_RULES,
                    help="how each turn after the first of the conversation is decided")
    ap.add_argument("--variant", default=DEFAULT_VARIANT, choices=VARIANTS,
                    help="CM's memory variant for the decisions (default: the app's)")
    ap.add_argument("--max-tokens", type=int, default=80)
    ap.add_argument("--turns", type=int, default=10, help="0 skips the time-to-first-token part")
    ap.add_argument("--followups", type=int, default=None,
                    help="at most this many follow-ups (0 skips that part)")
    ap.add_argument("--meaning", choices=("cm", "label"), default="cm",
                    help="reply for CM's decision (needs a bank) or for the query's label (the "
                    "right meaning: measures the reply alone, no bank, no decision passes)")
    ap.add_argument("--without-queries", type=int, default=None,
                    help="write the reply without guidance for only the first this many queries "
                    "(it states no key fact: the facts are the sample's own; saves model time)")
    ap.add_argument("--arms", default="with,without",
                    help="which replies to write per query: with guidance, without, or both")
    ap.add_argument("--json", help="write the figures and every reply here")
    ap.add_argument("--show", type=int, default=4, help="print this many example replies")
    args = ap.parse_args()

    from bank_store import DiscrepancyBank
    from cm_desktop.backends import load_backend
    from cm_desktop.cm.engine import CMEngine
    from cm_desktop.cm.estimate import estimate_bank
    from cm_desktop.cm.evaluate import held_out_queries
    from cm_desktop.datasets import load_dataset
    from cm_desktop.ui.resource_files import (SAMPLE_PROFILE_NAME, ensure_sample_profile,
                                              sample_guidance)

    profile = SAMPLE_PROFILE_NAME
    tmp = tempfile.TemporaryDirectory()
    bank_path = Path(args.bank_file) if args.bank_file else Path(tmp.name) / "bank.sqlite3"
    bank = DiscrepancyBank(bank_path)
    ensure_sample_profile(bank)
    backend = load_backend("llama_cpp", n_threads=args.threads)
    t0 = time.perf_counter()
    engine = None
    if args.meaning == "cm" or args.followups != 0 or args.turns:
        if args.bank_proportion > 0:
            report = estimate_bank(backend, bank, DATA / "large.jsonl", args.bank_proportion, 40,
                                   profile)
            print(f"bank: {bank.rating_count(profile)} ratings ({report.added} new, "
                  f"{time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        engine = CMEngine(backend, bank, profile, variant=args.variant)
    facts = {g.response: g.key_facts for g in sample_guidance(profile)}
    guidance = bank.guidance(profile)
    queries = held_out_queries(load_dataset(DATA / "small.jsonl"), bank, profile, None,
                               args.seed)
    pool = random.Random(args.seed).sample(list(queries), len(queries))
    queries = pool[:args.queries]          # 0: only the follow-up and time-to-first-token parts

    rows = []
    t0 = time.perf_counter()
    for i, rec in enumerate(queries):
        chosen = engine.decide(rec["input"]).chosen if args.meaning == "cm" else rec["label"]
        row = {"query": rec["input"], "label": rec["label"], "chosen": chosen}
        wanted = set(args.arms.split(","))
        arms = [("with", guidance.get(chosen, ""))] if "with" in wanted else []
        if "without" in wanted and (args.without_queries is None or i < args.without_queries):
            arms.append(("without", ""))
        for arm, text in arms:
            msgs = chat.reply_messages(backend, rec["input"], chosen, text, (), args.max_tokens)
            raw, shown = raw_and_shown(backend, msgs, args.max_tokens)
            row[arm] = {"raw": raw, "shown": shown,
                        "fact": states_key_fact(shown, facts.get(chosen, ())),
                        "raw_leak": chat.leak_position(raw) >= 0,
                        "shown_leak": chat.leak_position(shown) >= 0}
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)     # each row as it comes
        print(f"\r{i + 1}/{len(queries)} {time.perf_counter() - t0:.0f} s", end="",
              file=sys.stderr, flush=True)
    print(file=sys.stderr)
    n = max(len(rows), 1)

    def share(arm, key):
        had = [r for r in rows if arm in r]
        return sum(r[arm][key] for r in had) / len(had) if had else None

    right = [r for r in rows if r["chosen"] == r["label"]]
    figures = {
        "queries": len(rows), "queries_without_guidance": sum("without" in r for r in rows),
        "decision_accuracy": len(right) / n,
        "key_fact_with_guidance": share("with", "fact"),
        "key_fact_without_guidance": share("without", "fact"),
        "key_fact_with_guidance_right_meaning":
            sum(r["with"]["fact"] for r in right if "with" in r) / max(len(right), 1),
        "raw_leak_with": share("with", "raw_leak"), "raw_leak_without": share("without", "raw_leak"),
        "shown_leak_with": share("with", "shown_leak"),
        "shown_leak_without": share("without", "shown_leak"),
        "empty_replies_with": sum(not r["with"]["shown"].strip() for r in rows if "with" in r) / n,
    }

    # time to first token over one conversation
    history: list[dict] = []
    ttft, turn_right = [], []
    for turn in range(args.turns if engine is not None else 0):
        rec = pool[turn]
        trace = chat.decide_turn(engine, rec["input"], history, args.followup_rule)
        msgs = chat.reply_messages(backend, rec["input"], trace.chosen,
                                   guidance.get(trace.chosen, ""), history, args.max_tokens,
                                   guidance_of=guidance)
        evaluated = backend.stats.get("chat_tokens_evaluated", 0)
        t = time.perf_counter()
        stream = chat.clean_reply(backend.stream_chat(msgs, max_tokens=args.max_tokens,
                                                      temperature=0.0))
        first = next(stream, "")
        ttft.append(time.perf_counter() - t)
        reply = first + "".join(stream)
        turn_right.append(trace.chosen == rec["label"])
        print(json.dumps({"turn": turn + 1, "ttft_s": round(ttft[-1], 3), "chosen": trace.chosen,
                          "label": rec["label"], "decided_on": trace.query,
                          "prompt_tokens_evaluated":
                              backend.stats.get("chat_tokens_evaluated", 0) - evaluated,
                          "reply": reply}, ensure_ascii=False), flush=True)
        history += [{"role": "user", "content": rec["input"]},
                    {"role": "assistant", "content": reply, "meaning": trace.chosen}]
    figures["ttft_s"] = [round(x, 3) for x in ttft]
    # the turns are unrelated held-out queries: a decision pulled by the previous turn is wrong
    figures["turns_right_meaning"] = f"{sum(turn_right)} / {len(turn_right)}"
    figures["ttft_turn_last_over_first"] = ttft[-1] / ttft[0] if ttft else None
    # follow-ups: the second turn decided by each rule, on pairs that keep the thread and pairs
    # that change the subject
    follow = [json.loads(line) for line in FOLLOWUPS.read_text(encoding="utf-8").splitlines()
              if line.strip()][:args.followups]
    hits = {(rule, keeps): 0 for rule in chat.FOLLOWUP_RULES for keeps in (True, False)}
    for f in follow if engine is not None else ():
        history = [{"role": "user", "content": f["first"]},
                   {"role": "assistant", "content": ""}]
        for rule in chat.FOLLOWUP_RULES:
            trace = chat.decide_turn(engine, f["followup"], history, rule)
            hits[rule, f["keeps_thread"]] += trace.chosen == f["label"]
            print(json.dumps({"followup": f["followup"], "keeps_thread": f["keeps_thread"],
                              "rule": rule, "chosen": trace.chosen, "decided_on": trace.query,
                              "label": f["label"]}), flush=True)
    keeping = sum(f["keeps_thread"] for f in follow)
    for rule in chat.FOLLOWUP_RULES:
        right = hits[rule, True] + hits[rule, False]
        figures[f"followup_{rule}"] = right / len(follow) if follow else None
        figures[f"followup_{rule}_thread"] = f"{hits[rule, True]} / {keeping}"
        figures[f"followup_{rule}_change"] = f"{hits[rule, False]} / {len(follow) - keeping}"
    figures["followups"] = len(follow)
    figures["followup_rule_in_use"] = chat.FOLLOWUP_RULE

    backend.close()
    bank.close()

    figures["machine"] = f"{platform.machine()}, {platform.processor() or '?'}, " \
                         f"threads {args.threads}"
    figures["date"] = time.strftime("%Y-%m-%d")
    for r in rows[:args.show]:
        print(f"\nQ: {r['query']}\n   chosen {r['chosen']} (label {r['label']})")
        print(f"   with guidance:    {r.get('with', {}).get('shown')!r}")
        if "without" in r:
            print(f"   without guidance: {r['without']['shown']!r}")
    print()
    for k, v in figures.items():
        print(f"{k:40s} {v:.3f}" if isinstance(v, float) else f"{k:40s} {v}")
    if ttft:
        print(f"ttft median turns 1-3 {statistics.median(ttft[:3]):.3f} s, "
              f"turns {args.turns - 2}-{args.turns} {statistics.median(ttft[-3:]):.3f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"figures": figures, "rows": rows}, indent=1,
                                              ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
