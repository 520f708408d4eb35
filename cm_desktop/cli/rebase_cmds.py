"""`cm bank rebase`: ask the current model again about every instance rated with another model,
and the ratings-by-model lines `cm bank show` prints.

Interrupt (Ctrl+C, or SIGTERM for a run in the background) stops after the current instance and
keeps every answer written; running the command again resumes where it stopped.
"""

from __future__ import annotations

import signal
import sys
import threading

from cm_desktop.cli import open_bank
from cm_desktop.cli.terminal_text import inert


def model_lines(bank, profile: str, fingerprint: str | None) -> list[str]:
    """How the profile's ratings split by model, for `cm bank show`."""
    from bank_store.rebase import model_counts

    if fingerprint is None:
        return ["ratings by model: not known here (the current model's fingerprint is known "
                "only once it is loaded: a server, or no model file)"]
    c = model_counts(bank, profile, fingerprint)
    lines = [f"ratings by model: {c.current} with the current model ({fingerprint}), "
             f"{c.other} with other models"]
    for name, n in sorted(c.by_model.items(), key=lambda t: -t[1]):
        lines.append(f"  {n:>6}  {name}")
    if c.rebased:
        lines.append(f"{c.rebased} of them are rebased: a current-model rating of the same "
                     "query and response stands for each (kept, not counted twice)")
    if c.to_rebase:
        lines.append(f"{c.to_rebase} of them can be asked again with the current model: "
                     f"cm bank rebase --profile {profile}")
    if c.without_instance:
        lines.append(f"{c.without_instance} have no query (a paper file): they cannot be rebased, "
                     "and their counts do not steer the current model")
    return lines


class _StopOnSignal:
    """First SIGINT/SIGTERM asks the loop to stop after the current instance; a second SIGINT
    interrupts at once (answers already written are kept either way)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.event.set()
        print("\nstopping after the current query (Ctrl+C again to stop now)", file=sys.stderr)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def cmd_bank_rebase(args) -> int:
    from bank_store.rebase import model_counts, rebase
    from cm_desktop.cli.engine_cmds import Progress, _load_backend
    from cm_desktop.cm.engine import CMEngine

    bank = open_bank(args)
    bank.get_profile(args.profile)           # a clear error before the model loads
    backend = _load_backend(args)
    try:
        fingerprint = backend.fingerprint
        counts = model_counts(bank, args.profile, fingerprint)
        if counts.to_rebase == 0:
            print(f"nothing to rebase: {counts.current} ratings are the current model's"
                  + (f"; {counts.without_instance} from a paper file have no query and cannot be "
                     "rebased" if counts.without_instance else ""))
            return 0
        engine = CMEngine(backend, bank, args.profile, strategy=args.strategy, variant="none",
                          calibrate=not args.no_calibrate, length_normalise=args.length_normalise,
                          tune=False)
        engine.warm_up()

        def respond(x: str) -> tuple[str, list[float]]:
            # the model's distribution too: stored with the ratings, as the Rate view stores it
            outcome = engine.model_pass(x)
            return engine.responses[outcome.model_index], [float(v) for v in outcome.p]

        with _StopOnSignal() as stop:
            report = rebase(bank, args.profile, fingerprint, respond, strategy=args.strategy,
                            should_stop=stop.event.is_set, progress=Progress("rebase"))
    finally:
        backend.close()
    print(inert(f"profile {args.profile}: asked {report.instances} queries, added {report.added} "
                f"ratings with {fingerprint} ({report.changed} with a different model response); "
                "the old ratings are kept as another model's"))
    if report.without_instance:
        print(f"{report.without_instance} ratings have no query (a paper file) and cannot be "
              "rebased")
    if report.cancelled:
        print(f"stopped: {report.remaining} ratings still to do; run the same command to resume")
        return 130
    return 0


def register_bank_actions(sub) -> None:
    """Adds `rebase` to the `cm bank` actions (called by bank_cmds)."""
    from cm_desktop.cli.engine_cmds import STRATEGY_NAMES, _add_backend_options

    p = sub.add_parser(
        "rebase", help="ask the current model again about queries rated with another model",
        description="For every rating whose model response came from another model (another "
        "GGUF, another backend, an imported bank), ask the current model about its query and "
        "store its answer beside your response. Old ratings are kept, marked as the other "
        "model's. Resumable: Ctrl+C (or SIGTERM) stops after the current query.")
    p.add_argument("--profile", required=True)
    p.add_argument("--strategy", choices=STRATEGY_NAMES, default="vanilla")
    _add_backend_options(p)
    p.set_defaults(func=cmd_bank_rebase)
