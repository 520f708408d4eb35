"""`cm profile ...` and `cm bank ...`: profiles, bank files, the bank's content, backups."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cm_desktop.cli import CLIError, bank_location, format_table, open_bank
from cm_desktop.cli.terminal_text import inert

_ADD_FIELDS = {"instance", "model_response", "user_response", "source", "strategy",
               "fingerprint", "created"}


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_profile(subparsers)
    _register_bank(subparsers)


# ---- reading response sets --------------------------------------------------------------------

def responses_from_file(path: str) -> list[str]:
    """One response per line, blank lines skipped (a regular file, size-capped, streamed)."""
    from bank_store.files import iter_input_lines

    responses = [line.strip() for _, line in iter_input_lines(path) if line.strip()]
    if not responses:
        raise CLIError(f"{path}: no responses in the file (one per line expected)")
    return responses


def responses_from_dataset(path: str) -> list[str]:
    """The sorted distinct labels of a dataset file ({"input", "label", ...} per line)."""
    # One reader owns the dataset format (cm_desktop.datasets): `cm estimate`, `cm eval` and the
    # GUI's Open dataset use it too.
    from cm_desktop.datasets import load_dataset

    try:
        records = load_dataset(path)
    except ValueError as e:  # missing, not a regular file, too big, bad JSON or fields, not UTF-8
        raise CLIError(str(e)) from None
    return sorted({r["label"].strip() for r in records})


def _responses_option(args: argparse.Namespace) -> list[str] | None:
    if getattr(args, "responses", None):
        return responses_from_file(args.responses)
    if getattr(args, "from_dataset", None):
        return responses_from_dataset(args.from_dataset)
    return None


def _add_responses_options(parser: argparse.ArgumentParser, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--responses", metavar="FILE",
                       help="the response set, one response per line")
    group.add_argument("--from-dataset", metavar="FILE.jsonl",
                       help="the response set is the sorted distinct labels of this dataset")


# ---- cm profile -------------------------------------------------------------------------------

def _register_profile(subparsers) -> None:
    profile = subparsers.add_parser("profile", help="create, list, show and delete profiles",
                                    description="Profiles: a named response set and its ratings.")
    sub = profile.add_subparsers(dest="profile_command", metavar="ACTION", required=True)

    p = sub.add_parser("create", help="create a profile", description="Create a profile "
                       "from a response list or a dataset's labels.")
    p.add_argument("name")
    _add_responses_options(p, required=True)
    p.add_argument("--description", default="")
    p.set_defaults(func=cmd_profile_create)

    p = sub.add_parser("list", help="list the profiles", description="List the profiles.")
    p.set_defaults(func=cmd_profile_list)

    p = sub.add_parser("show", help="show one profile", description="Show a profile: its "
                       "response set and what its bank holds.")
    p.add_argument("name")
    p.add_argument("--all", action="store_true", help="list every response")
    p.set_defaults(func=cmd_profile_show)

    p = sub.add_parser("delete", help="delete a profile and its ratings (backup first)",
                       description="Delete a profile and all its ratings. A backup of the "
                       "bank is taken first.")
    p.add_argument("name")
    p.set_defaults(func=cmd_profile_delete)

    from cm_desktop.cli.guidance_cmds import register_under_profile
    register_under_profile(sub)


def cmd_profile_create(args) -> int:
    responses = _responses_option(args)
    with open_bank(args) as bank:
        p = bank.create_profile(args.name, responses, description=args.description)
    print(inert(f"created profile {p.name!r} with {len(p.responses)} responses"))
    return 0


def cmd_profile_list(args) -> int:
    with open_bank(args) as bank:
        rows = [(p.name, len(p.responses), bank.rating_count(p.name), p.description)
                for p in bank.list_profiles()]
    if not rows:
        print(inert(f"no profiles in {bank_location(args)}"))
        return 0
    print(format_table(["PROFILE", "RESPONSES", "RATINGS", "DESCRIPTION"], rows))
    return 0


def cmd_profile_show(args) -> int:
    with open_bank(args) as bank:
        with bank.transaction(write=False):
            p = bank.get_profile(args.name)
            stats = bank.stats(args.name)
            guidance = bank.guidance(args.name)
    by_source = ", ".join(f"{k} {v}" for k, v in stats["by_source"].items())
    print(f"profile      {inert(p.name)}")
    print(f"description  {inert(p.description) or '-'}")
    print(f"fingerprint  {inert(p.fingerprint or '-')}")
    print(f"created      {inert(p.created)}\nupdated      {inert(p.updated)}")
    print(f"ratings      {stats['ratings']} ({by_source})")
    print(f"agreement    {stats['agreement']:.1%} of ratings have y' == y")
    print(f"coverage     {stats['coverage']:.1%} of the response set seen in the bank")
    shown = p.responses if args.all else p.responses[:10]
    print(f"responses    {len(p.responses)} ({len(guidance)} with guidance)")
    for r in shown:
        note = f"  -- {' '.join(guidance[r].split())}" if r in guidance else ""
        print(f"  {inert(r + note)}")
    if len(shown) < len(p.responses):
        print(f"  ... {len(p.responses) - len(shown)} more (--all lists them)")
    return 0


def cmd_profile_delete(args) -> int:
    from cm_desktop.cm.encoder_tuning import tuned_file
    from cm_desktop.paths import tuned_encoders_dir

    with open_bank(args) as bank:
        backup = bank.delete_profile(args.name, backup=True)  # backed up inside its write lock
        # the encoder tuned on the profile holds its rated texts too (and 91 MB): it goes with it;
        # a restored backup is tuned again when next used
        tuned_file(tuned_encoders_dir(), bank.path, args.name).unlink(missing_ok=True)
    print(inert(f"deleted profile {args.name!r} (backup: {backup})"))
    return 0


# ---- cm bank ----------------------------------------------------------------------------------

def _register_bank(subparsers) -> None:
    bank = subparsers.add_parser("bank", help="import, export, show and edit the bank",
                                 description="The discrepancy bank: ratings and their counts.")
    sub = bank.add_subparsers(dest="bank_command", metavar="ACTION", required=True)

    p = sub.add_parser("import", help="import a bank file", description="Import a native or "
                       "paper bank file into a profile (created if missing). Merges by default: "
                       "ratings already present are skipped.")
    p.add_argument("file")
    p.add_argument("--profile", required=True)
    p.add_argument("--format", choices=["native", "paper"], help="default: detected")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--merge", dest="mode", action="store_const", const="merge",
                      help="add new ratings, skip those present (default)")
    mode.add_argument("--replace", dest="mode", action="store_const", const="replace",
                      help="remove the profile's ratings first (a backup is taken)")
    p.add_argument("--dry-run", action="store_true", help="print what would change, change "
                   "nothing")
    p.add_argument("--on-mismatch", choices=["error", "keep", "union"], default="error",
                   help="when the file's response set differs from the profile's: stop "
                   "(default), keep the profile's, or add the file's responses")
    _add_responses_options(p, required=False)
    p.set_defaults(func=cmd_bank_import, mode="merge")

    p = sub.add_parser("export", help="export a profile to a bank file",
                       description="Export a profile. Native keeps everything (a .gz name "
                       "compresses); paper writes {model response: [user responses]}.")
    p.add_argument("file")
    p.add_argument("--profile", required=True)
    p.add_argument("--format", choices=["native", "paper"], default="native")
    p.set_defaults(func=cmd_bank_export)

    p = sub.add_parser("show", help="the top discrepancies as a table",
                       description="Show the most frequent discrepancies (y' != y).")
    p.add_argument("--profile", required=True)
    p.add_argument("--top", type=int, default=20, metavar="N")
    p.set_defaults(func=cmd_bank_show)

    p = sub.add_parser("add", help="add ratings from a JSON-lines file",
                       description="Add ratings, one JSON object per line with instance, "
                       "model_response, user_response (optional: source, strategy, "
                       "fingerprint). One transaction per rating; each id is printed once "
                       "stored. FILE '-' reads standard input.")
    p.add_argument("--profile", required=True)
    p.add_argument("--jsonl", required=True, metavar="FILE")
    p.set_defaults(func=cmd_bank_add)

    p = sub.add_parser("undo", help="remove the newest ratings, or one by id",
                       description="Remove the newest N ratings (default 1) or one by --id.")
    p.add_argument("--profile", required=True)
    p.add_argument("-n", type=int, default=1, metavar="N")
    p.add_argument("--id", dest="rating_id", metavar="ID")
    p.set_defaults(func=cmd_bank_undo)

    p = sub.add_parser("backup", help="copy the whole bank to a backup file",
                       description="Copy the whole bank (default: the backups folder).")
    p.add_argument("--to", metavar="PATH")
    p.set_defaults(func=cmd_bank_backup)

    p = sub.add_parser("restore", help="replace the bank by a backup",
                       description="Replace the whole bank by a backup; the current bank is "
                       "backed up first.")
    p.add_argument("backup")
    p.set_defaults(func=cmd_bank_restore)

    p = sub.add_parser("recover", help="salvage a damaged bank into a new file",
                       description="Copy what SQLite can still read from a damaged bank into a "
                       "new bank file (default: the backups folder). The damaged bank is kept "
                       "as it is.")
    p.add_argument("--to", metavar="PATH")
    p.set_defaults(func=cmd_bank_recover)

    from cm_desktop.cli.rebase_cmds import register_bank_actions

    register_bank_actions(sub)     # rebase: needs a model, so it lives with the model commands


def cmd_bank_import(args) -> int:
    from bank_store.formats import import_file

    responses = _responses_option(args)
    with open_bank(args) as bank:
        report = import_file(bank, args.file, args.profile, format=args.format, mode=args.mode,
                             dry_run=args.dry_run, on_mismatch=args.on_mismatch,
                             responses=responses)
    print(inert(report.summary(), keep_newlines=True))
    from bank_store.formats import read_bank_file
    from bank_store.rebase import file_model_note
    from cm_desktop.models.current import settings_fingerprint
    from cm_desktop.settings import Settings

    note = file_model_note(read_bank_file(args.file, args.format),
                           settings_fingerprint(Settings.load()))
    if note:
        print(inert(f"note: {note}"))
    return 0


def cmd_bank_export(args) -> int:
    from bank_store.formats import export_native, export_paper

    if not args.file.strip():
        raise CLIError("give the file to export to (an empty name was given)")
    with open_bank(args) as bank:
        if args.format == "paper":
            n = export_paper(bank, args.profile, args.file)
            print(inert(f"wrote {n} (model response, user response) pairs to {args.file}"))
        else:
            n = export_native(bank, args.profile, args.file)
            print(inert(f"wrote {n} ratings to {args.file}"))
    return 0


def cmd_bank_show(args) -> int:
    if args.top < 1:
        raise CLIError("--top must be at least 1")
    with open_bank(args) as bank:
        with bank.transaction(write=False):
            counts = bank.counts(args.profile)
            stats = bank.stats(args.profile)
    per_model: dict[str, int] = {}
    for (a, _), n in counts.items():
        per_model[a] = per_model.get(a, 0) + n
    rows = sorted(((a, b, n) for (a, b), n in counts.items() if a != b),
                  key=lambda t: (-t[2], t[0], t[1]))
    print(f"{stats['ratings']} ratings, agreement {stats['agreement']:.1%}, "
          f"{len(rows)} discrepancies (model response -> what the user meant)")
    if rows:
        table = [(a, b, n, f"{n / per_model[a]:.0%}") for a, b, n in rows[:args.top]]
        print(format_table(["MODEL RESPONSE", "USER RESPONSE", "N", "SHARE"], table))
    from cm_desktop.cli.rebase_cmds import model_lines
    from cm_desktop.models.current import settings_fingerprint
    from cm_desktop.settings import Settings

    with open_bank(args) as bank:
        for line in model_lines(bank, args.profile, settings_fingerprint(Settings.load())):
            print(inert(line))
    return 0


def _parse_add_line(text: str, where: str) -> dict:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        raise CLIError(f"{where}: invalid JSON ({e.msg})") from None
    if not isinstance(row, dict):
        raise CLIError(f"{where}: expected a JSON object")
    unknown = sorted(set(row) - _ADD_FIELDS)
    if unknown:
        raise CLIError(f"{where}: unknown field {unknown[0]!r}")
    for key in ("model_response", "user_response"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise CLIError(f"{where}: {key} must be non-empty text")
    if not isinstance(row.get("instance", ""), str):
        raise CLIError(f"{where}: instance must be text")
    return row


def cmd_bank_add(args) -> int:
    from bank_store import BankError

    from bank_store.files import iter_input_lines

    def lines():
        if args.jsonl == "-":
            # stdin is streamed: each line is stored as soon as it arrives (lines capped)
            yield from iter_input_lines("-", max_bytes=None, allow_stdin=True)
        else:
            # a file is checked whole first (streamed, size-capped), so a bad line stores
            # nothing; then read again to store
            for number, line in iter_input_lines(args.jsonl):
                if line.strip():
                    _parse_add_line(line, f"{args.jsonl}: line {number}")
            yield from iter_input_lines(args.jsonl)

    added = 0
    with open_bank(args) as bank:
        bank.get_profile(args.profile)
        for number, line in lines():
            if not line.strip():
                continue
            row = _parse_add_line(line, f"{args.jsonl}: line {number}")
            try:
                rating = bank.add_rating(args.profile, row.get("instance", ""),
                                         row["model_response"], row["user_response"],
                                         **{k: row[k] for k in ("source", "strategy",
                                                                "fingerprint", "created")
                                            if k in row})
            except BankError as e:
                raise BankError(f"{args.jsonl}: line {number}: {e} ({added} added before "
                                "it)") from None
            added += 1
            print(inert(rating.id), flush=True)
    print(inert(f"added {added} ratings to {args.profile!r}"), file=sys.stderr)
    return 0


def cmd_bank_undo(args) -> int:
    with open_bank(args) as bank:
        if args.rating_id:
            removed = [bank.remove_rating(args.profile, args.rating_id)]
        else:
            if args.n < 1:
                raise CLIError("-n must be at least 1")
            removed = bank.undo_last(args.profile, args.n)
    for r in removed:
        print(inert(f"removed {r.id}  {r.model_response!r} -> {r.user_response!r}  "
                    f"{r.instance[:60]!r}"))
    print(inert(f"removed {len(removed)} ratings from {args.profile!r}"))
    return 0


def cmd_bank_backup(args) -> int:
    with open_bank(args) as bank:
        dest = bank.backup(args.to)
    print(inert(f"backup written to {dest}"))
    return 0


def cmd_bank_restore(args) -> int:
    source = Path(args.backup).expanduser()
    if not source.is_file():
        raise CLIError(f"{args.backup}: backup not found")
    with open_bank(args) as bank:
        safety = bank.restore_backup(source)  # validated first; safety taken inside the lock
    print(inert(f"restored the bank from {source} (the previous bank was saved to {safety})"))
    return 0


def cmd_bank_recover(args) -> int:
    from bank_store.backups import recover
    from bank_store.files import make_private_dirs
    from cm_desktop.paths import backups_dir

    damaged = bank_location(args)
    if args.to:
        dest = Path(args.to).expanduser()
    else:
        from bank_store import utc_now

        stamp = utc_now().replace(":", "").replace("-", "").replace("+0000", "Z")
        dest = make_private_dirs(backups_dir()) / f"{damaged.stem}-recovered-{stamp}.sqlite3"
    copied = recover(damaged, dest)
    print(inert(f"recovered {copied.get('ratings', 0)} ratings in {copied.get('profiles', 0)} "
                f"profiles into {dest}; the damaged bank is kept at {damaged}. To use the "
                f"copy: cm --bank {dest} ... (or move it into the damaged bank's place)"))
    return 0
