"""`cm curve`: learning curves by simulation (accuracy against the number of ratings).

A simulated user rates pool queries in an order (random, or the app's coverage-driven queue);
after each size every method answers the held-out test queries. The model's p(y'|x) is computed
once per query and cached on disk, so a curve costs one model pass per pool and test query.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from cm_desktop.cli import CLIError, format_table, open_bank
from cm_desktop.cli.engine_cmds import Progress, _add_backend_options, _check_dataset, _load_backend

MAX_LIMIT = 100_000


def _names(text: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in allowed]
    if bad or not names:
        raise CLIError(f"{flag}: unknown {', '.join(bad) or '(empty)'}; choose from {','.join(allowed)}")
    return list(dict.fromkeys(names))


def _responses(args, records: list[dict]) -> tuple[list[str], list[str]]:
    """The profile's response set (its bank's inputs are kept out of the test set); a profile
    that does not exist yet gets the dataset's sorted labels, and nothing is written."""
    from bank_store import BankError

    labels = sorted({r["label"] for r in records})
    bank = open_bank(args)
    try:
        prof = bank.get_profile(args.profile)
    except BankError:
        return labels, []
    missing = sorted(set(labels) - set(prof.responses))
    if missing:
        raise CLIError(f"profile {args.profile!r} lacks these dataset labels: "
                       f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    return list(prof.responses), [r.instance for r in bank.ratings(args.profile)]


def _window(text: str | None) -> int | None:
    """--window as curve.rating_orders takes it (None: all remaining queries)."""
    from cm_desktop.cm.coverage import RANK_LIMIT

    if text is None:
        return RANK_LIMIT
    if text.strip() == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise CLIError(f"--window must be a whole number or 'all', not {text!r}") from None
    if not 1 <= n <= MAX_LIMIT:
        raise CLIError(f"--window must be between 1 and {MAX_LIMIT}, or 'all'")
    return n


def _embed(texts: list[str]):
    from cm_desktop.cm.retrieval import default_embedder

    embedder = default_embedder()
    return embedder, embedder.encode(texts)


def cmd_curve(args) -> int:
    import numpy as np

    from bank_store import DiscrepancyBank
    from cm_desktop.cm import curve
    from cm_desktop.cm.engine import CMEngine
    from cm_desktop.datasets import load_dataset
    from cm_desktop.cm.evidence import response_text
    from cm_desktop.cm.pass_cache import model_passes
    from cm_desktop.paths import data_dir

    pool_path = _check_dataset(args.dataset)
    test_path = Path(args.test).expanduser() if args.test else None
    if test_path is not None and not test_path.is_file():
        raise CLIError(f"--test: no such file: {args.test}")
    same = test_path is None or test_path.resolve() == pool_path.resolve()
    try:
        sizes = curve.parse_sizes(args.sizes)
    except ValueError as e:
        raise CLIError(str(e)) from None
    orders = _names(args.orders, curve.ORDERS, "--orders")
    methods = _names(args.methods, curve.METHODS, "--methods")
    for flag, value in (("--limit", args.limit), ("--test-limit", args.test_limit)):
        if value is not None and not 1 <= value <= MAX_LIMIT:
            raise CLIError(f"{flag} must be between 1 and {MAX_LIMIT}")
    if not 1 <= args.repeats <= curve.MAX_REPEATS:
        raise CLIError(f"--repeats must be between 1 and {curve.MAX_REPEATS}")
    window = _window(args.window)
    pool_records = load_dataset(pool_path)
    test_records = None if same else load_dataset(test_path)
    responses, in_bank = _responses(args, pool_records + (test_records or []))
    pool, test = curve.split_records(pool_records, test_records, limit=args.limit,
                                     test_limit=args.test_limit or args.limit, seed=args.seed,
                                     exclude=in_bank)
    pos = {r: i for i, r in enumerate(responses)}
    print(f"pool {len(pool)} queries, test {len(test)} queries, {len(responses)} responses",
          file=sys.stderr)

    backend = _load_backend(args)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # a scratch profile with the same responses: the vanilla prompt needs no bank
            scratch = DiscrepancyBank(Path(tmp) / "scratch.sqlite3")
            scratch.create_profile("curve", responses)
            engine = CMEngine(backend, scratch, "curve", strategy="vanilla", variant="none",
                              calibrate=not args.no_calibrate,
                              length_normalise=args.length_normalise, tune=False)
            cache_dir = Path(args.cache_dir).expanduser() if args.cache_dir else \
                data_dir() / "model-pass-cache"
            stem = pool_path.parent.name or pool_path.stem
            t0 = time.perf_counter()
            passes = {}
            for part, recs in (("test", test), ("pool", pool)):
                passes[part] = model_passes(engine, [r["input"] for r in recs], cache_dir,
                                            f"{stem}-{part}", progress=Progress(f"model {part}"))
            pass_wall = time.perf_counter() - t0
            scratch.close_all()
    finally:
        backend.close()

    embedder, vecs = _embed([r["input"] for r in pool] + [r["input"] for r in test]
                            + [response_text(r) for r in responses])
    n_pool, n_test = len(pool), len(test)
    data = curve.CurveInputs(
        responses=responses, pool_texts=[r["input"] for r in pool],
        pool_users=np.array([pos[r["label"]] for r in pool]), p_pool=passes["pool"].p,
        e_pool=vecs[:n_pool], test_users=np.array([pos[r["label"]] for r in test]),
        p_test=passes["test"].p, e_test=vecs[n_pool:n_pool + n_test],
        e_responses=vecs[n_pool + n_test:], test_texts=[r["input"] for r in test])
    result = curve.run_curve(data, sizes, orders, args.seed, methods, repeats=args.repeats,
                             window=window, embedder=embedder, progress=Progress("curve"))
    computed = sum(p.computed_now for p in passes.values())
    seconds = np.concatenate([passes["pool"].seconds, passes["test"].seconds])
    out = {"dataset": str(args.dataset), "test": str(args.test or args.dataset), "n": n_test,
           "pool": n_pool, "responses": len(responses), "seed": args.seed,
           "repeats": args.repeats, "window": window,
           "model_passes": {"per_query": 1, "pool": n_pool, "test": n_test,
                            "computed_now": computed, "from_cache": n_pool + n_test - computed,
                            "seconds_per_pass": float(seconds.mean()),
                            "wall_seconds_now": pass_wall},
           "rows": result["rows"], "tuned": result["tuned"],
           "skipped_sizes": result["skipped_sizes"]}
    table = [[r["size"], r["order"], r["method"], f"{r['accuracy']:.3f}",
              f"{r['accuracy_sd']:.3f}", f"{r['macro_f1']:.3f}"] for r in result["rows"]]
    print(format_table(["size", "order", "method", "accuracy", "sd", "macro-F1"], table))
    print(f"model passes: 1 per query ({n_pool} pool + {n_test} test), {computed} run now, "
          f"{n_pool + n_test - computed} from the cache; {seconds.mean():.3f} s per pass")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    if args.plot:
        from cm_desktop.cm.curve_plot import plot_curves

        plot_curves(out, args.plot)
    return 0


def register(subparsers) -> None:
    from cm_desktop.cm.curve import METHODS, ORDERS

    p = subparsers.add_parser(
        "curve", help="learning curves: accuracy against the number of ratings, by simulation",
        description="Simulate a user rating pool queries in an order; after each size, evaluate "
        "every method on held-out test queries. With no --test (or the same file) the dataset "
        "is split into two disjoint halves by --seed. The model's p(y'|x) is computed once per "
        "query and cached (--cache-dir), so a curve costs one model pass per query.")
    p.add_argument("--dataset", required=True, metavar="POOL.jsonl", help="queries the user rates")
    p.add_argument("--test", metavar="TEST.jsonl", help="held-out queries (default: half of --dataset)")
    p.add_argument("--profile", required=True,
                   help="its responses are the answer set and its bank's inputs leave the test set; "
                   "a missing profile means the dataset's sorted labels (nothing is created)")
    p.add_argument("--sizes", default="10,25,50,100,200,500", help="bank sizes, comma-separated")
    p.add_argument("--orders", default="random,coverage", help="comma-separated: " + ",".join(ORDERS))
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated: " + ",".join(METHODS))
    p.add_argument("--limit", type=int, default=None, help="at most this many pool queries")
    p.add_argument("--test-limit", type=int, default=None, help="at most this many test queries "
                   "(default: --limit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1,
                   help="simulated users, each with its own rating order (seeds --seed, "
                   "--seed+1, ...): accuracy is their mean, sd their spread")
    p.add_argument("--window", default=None, metavar="N|all",
                   help="coverage order: pick the neediest of the next N queries of the user's "
                   "queue (default: as many as the Rate view ranks), or of 'all' the remaining "
                   "ones")
    p.add_argument("--cache-dir", metavar="DIR", help="where p(y'|x) is cached "
                   "(default: the data dir's model-pass-cache)")
    p.add_argument("--json", metavar="OUT.json", help="write the rows as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="accuracy against ratings, one panel per order")
    _add_backend_options(p)
    p.set_defaults(func=cmd_curve)
