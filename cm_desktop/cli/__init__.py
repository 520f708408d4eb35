"""The `cm` command line. Helpers every subcommand module shares live here.

A subcommand module exposes `register(subparsers)`; each parser it adds sets
`func=handler`, a function `handler(args) -> int` (the exit status). Errors a person can fix
are raised as CLIError (or the layers' own errors); `main` turns them into one line on stderr.
"""

from __future__ import annotations

import argparse
from typing import Sequence


class CLIError(Exception):
    """A mistake in how the command was used (bad file, missing option): exit status 2."""


def bank_location(args: argparse.Namespace):
    from cm_desktop.paths import bank_path

    return bank_path(getattr(args, "bank", None))


def open_bank(args: argparse.Namespace):
    """The bank chosen by --bank, else CM_BANK, else the user's data dir (created if new),
    checked on open (a damaged bank is refused); backups go to the app's backups folder."""
    from bank_store import DiscrepancyBank
    from cm_desktop.paths import backups_dir

    return DiscrepancyBank(bank_location(args), backup_dir=backups_dir())


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table, columns padded to their widest cell; every cell inert (bank and file
    text may hold terminal control sequences)."""
    from cm_desktop.cli.terminal_text import inert

    cells = [[inert(h) for h in headers]] + [[inert(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
