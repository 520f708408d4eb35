"""`cm estimate`, `cm eval`: the CM engine from the terminal (`cm chat` is in chat_cmds).

Each takes the backend options --backend llama_cpp|hf|openai --model PATH_OR_NAME --base-url URL
(default: the model `cm models use` chose, else the embedded Gemma, via llama_cpp) and --threads.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from cm_desktop.cli import CLIError, open_bank
from cm_desktop.cli.terminal_text import inert

from cm_desktop.backends import KINDS as BACKEND_KINDS
from cm_desktop.cm import STRATEGIES as STRATEGY_NAMES  # defined once


def _add_backend_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--backend", choices=BACKEND_KINDS, default="llama_cpp",
                   help="how to reach the model (default: llama_cpp on the embedded Gemma)")
    g.add_argument("--model", metavar="PATH_OR_NAME",
                   help="GGUF file / model dir, or a name from `cm models list` (llama_cpp, hf); "
                   "the served model's name (openai)")
    g.add_argument("--base-url", metavar="URL", help="openai: the server, e.g. http://127.0.0.1:8080/v1")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for the model")
    g.add_argument("--no-calibrate", action="store_true",
                   help="use the raw candidate likelihoods (no content-free calibration)")
    g.add_argument("--length-normalise", action="store_true",
                   help="score candidates by their mean log-probability per token")


def _load_backend(args):
    from cm_desktop.backends import load_backend

    if args.backend == "openai":
        if not args.base_url:
            raise CLIError("--backend openai needs --base-url (e.g. http://127.0.0.1:8080/v1)")
        return load_backend("openai", base_url=args.base_url, model=args.model)
    from cm_desktop.cli.models_cmds import resolve_model_option, warn_before_loading

    model = args.model
    if model is None and args.backend == "llama_cpp":
        from cm_desktop.settings import Settings

        model = Settings.load().model_path or None   # `cm models use` chose it
    model = resolve_model_option(model)              # a path, or a library name
    if args.backend == "llama_cpp":
        warn_before_loading(model)
    return load_backend(args.backend, model_path=model, n_threads=args.threads)


_BAR_FORMAT = "{desc} {n_fmt}/{total_fmt} {percentage:3.0f}% {bar} elapsed {elapsed} ETA {remaining}"


class Progress:
    """A tqdm progress bar on stderr, fed by the engine's `progress(done, total)` callbacks
    (redrawn in place on a terminal; tqdm also writes it when stderr is a file or pipe)."""

    def __init__(self, label: str, stream=None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self._bar = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            self._bar = tqdm(total=total, desc=self.label, file=self.stream, mininterval=0.5,
                             dynamic_ncols=True, bar_format=_BAR_FORMAT)
        self._bar.update(done - self._bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _strategies(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in STRATEGY_NAMES]
    if bad or not names:
        raise CLIError(f"--strategies: unknown {', '.join(bad) or '(empty)'}; "
                       f"choose from {','.join(STRATEGY_NAMES)}")
    return names


def _check_dataset(path: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise CLIError(f"--dataset: no such file: {path}")
    return p


def cmd_estimate(args) -> int:
    from cm_desktop.cm.estimate import estimate_bank

    dataset = _check_dataset(args.dataset)
    if not 0 < args.proportion <= 1:
        raise CLIError(f"--proportion must be in (0, 1], got {args.proportion}")
    bank = open_bank(args)
    backend = _load_backend(args)
    try:
        report = estimate_bank(backend, bank, dataset, args.proportion, args.seed, args.profile,
                               args.strategy, progress=Progress("estimate"))
    finally:
        backend.close()
    print(inert(f"profile {report.profile}: sampled {report.sampled}, added {report.added} "
                f"estimated ratings, {report.skipped} already in the bank; model agreed with the "
                f"label on {report.agreement:.1%} of the added"))
    return 0


def cmd_eval(args) -> int:
    from cm_desktop.cm.engine import CMEngine
    from cm_desktop.cm.evaluate import evaluate, format_table, held_out_queries
    from cm_desktop.datasets import load_dataset

    dataset = _check_dataset(args.dataset)
    strategies = _strategies(args.strategies)
    bank = open_bank(args)
    bank.get_profile(args.profile)          # a clear error before the model loads
    records = load_dataset(dataset)
    queries = held_out_queries(records, bank, args.profile, args.limit, args.seed)
    if not queries:
        raise CLIError("no held-out queries: every input of the dataset is in the bank")
    backend = _load_backend(args)
    try:
        engine = CMEngine(backend, bank, args.profile, strategy=strategies[0],
                          calibrate=not args.no_calibrate, length_normalise=args.length_normalise)
        print(f"bank: {len(engine.index)} ratings; tuned on the bank: {engine.params.to_dict()}",
              file=sys.stderr)
        def write_json(rows, n):
            if args.json:
                out = {"dataset": str(args.dataset), "profile": args.profile, "n": n, "rows": rows}
                Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")

        timing: dict = {}
        rows = evaluate(engine, queries, strategies, progress=Progress("eval"),
                        checkpoint=write_json, timing=timing)
    finally:
        backend.close()
    print(inert(f"{dataset.name}: profile {args.profile}, {len(queries)} held-out queries"))
    print(format_table(rows))
    print(f"wall time per query, every row above together: {timing['wall_seconds_per_query']:.3f} s")
    write_json(rows, len(queries))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "estimate", help="estimate a bank: run the model on a sample of a labelled dataset",
        description="Sample a proportion of a {task,input,label} JSON-lines dataset, run the model "
        "on each instance and store (x, y', label) as estimated ratings. Resumable.")
    p.add_argument("--dataset", required=True, metavar="FILE.jsonl")
    p.add_argument("--proportion", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=40)
    p.add_argument("--profile", required=True)
    p.add_argument("--strategy", choices=STRATEGY_NAMES, default="vanilla")
    _add_backend_options(p)
    p.set_defaults(func=cmd_estimate)

    p = subparsers.add_parser(
        "eval", help="accuracy table: strategies x memory variants + nearest neighbour",
        description="Evaluate on held-out inputs (those in the bank are excluded).")
    p.add_argument("--dataset", required=True, metavar="FILE.jsonl")
    p.add_argument("--profile", required=True)
    p.add_argument("--strategies", default="vanilla", help="comma-separated: " + ",".join(STRATEGY_NAMES))
    p.add_argument("--limit", type=int, default=None, help="at most this many queries")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="OUT.json", help="also write the rows as JSON")
    _add_backend_options(p)
    p.set_defaults(func=cmd_eval)


def main(argv=None) -> int:
    """For running these commands alone (`python -m cm_desktop.cli.engine_cmds ...`)."""
    parser = argparse.ArgumentParser(prog="cm")
    parser.add_argument("--bank", metavar="PATH")
    parser.add_argument("--debug", action="store_true")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
