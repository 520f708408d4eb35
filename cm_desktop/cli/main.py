"""`cm`: the command line. Subcommands come from the modules in SUBCOMMAND_MODULES, each with
`register(subparsers)`. Errors are one line on stderr and a non-zero exit, never a traceback
(unless --debug)."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import traceback
from typing import Sequence

from cm_desktop.cli import CLIError
from cm_desktop.cli.terminal_text import inert

SUBCOMMAND_MODULES = ["cm_desktop.cli.bank_cmds", "cm_desktop.cli.engine_cmds",
                      "cm_desktop.cli.chat_cmds", "cm_desktop.cli.models_cmds",
                      "cm_desktop.cli.curve_cmds"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (with where to get help), like every error."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"cm: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> tuple[argparse.ArgumentParser, list[str]]:
    """The parser, and one warning per subcommand module that could not be loaded."""
    parser = _OneLineParser(
        prog="cm", description="CM Desktop from the command line: profiles, the discrepancy "
        "bank and bank files.")
    parser.add_argument("--bank", metavar="PATH",
                        help="the bank file (default: $CM_BANK, else the user's data dir)")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback when something fails")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    warnings = []
    for name in SUBCOMMAND_MODULES:
        try:
            importlib.import_module(name).register(subparsers)
        except Exception as e:  # one broken module must not take the others down
            warnings.append(f"cm: warning: commands from {name} unavailable: {e}")
    return parser, warnings


def _one_line(e: BaseException) -> str:
    """The error as one inert line: a damaged byte or a hostile name in it is shown escaped."""
    return inert(re.sub(r"[ \t\r\n]+", " ", str(e)).strip()) or type(e).__name__


def _describe(e: BaseException) -> tuple[int, str]:
    """(exit status, the one line to print) for an error a command raised."""
    from bank_store import BankError

    if isinstance(e, CLIError):
        return EXIT_USAGE, _one_line(e)
    if isinstance(e, BankError):
        return EXIT_ERROR, _one_line(e)
    if isinstance(e, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(e, OSError):
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        return EXIT_ERROR, f"{e.strerror or _one_line(e)}{where}"
    # the project's own errors carry a message meant for people; anything else is unexpected,
    # so its type is part of the line
    ours = type(e).__module__.split(".")[0] in ("cm_desktop", "bank_store")
    return EXIT_ERROR, _one_line(e) if ours else f"unexpected {type(e).__name__}: {_one_line(e)}"


def main(argv: Sequence[str] | None = None) -> int:
    parser, warnings = build_parser()
    args = parser.parse_args(argv)  # a usage mistake exits 2 with one line
    debug = args.debug or os.environ.get("CM_DEBUG") == "1"
    for w in warnings:
        print(inert(w), file=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `cm bank show | head`: the reader left, nothing went wrong
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (Exception, KeyboardInterrupt) as e:
        code, message = _describe(e)
        if debug:
            traceback.print_exception(e)
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            pass
        print(f"cm: error: {inert(message)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
