"""`cm profile guidance PROFILE RESPONSE [TEXT | --file F | --clear]`: what a reply for one of a
profile's responses must say. With neither text, --file nor --clear it prints the guidance (of
every response with some when RESPONSE is left out)."""

from __future__ import annotations

from pathlib import Path

from cm_desktop.cli import CLIError, format_table, open_bank
from cm_desktop.cli.terminal_text import inert

MAX_FILE_BYTES = 64 * 1024


def _text_from_file(path: str) -> str:
    p = Path(path).expanduser()
    try:
        if p.stat().st_size > MAX_FILE_BYTES:
            raise CLIError(f"--file {path}: larger than {MAX_FILE_BYTES // 1024} KiB; guidance "
                           "is a paragraph or two")
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CLIError(f"--file: no such file: {path}") from None
    except UnicodeDecodeError:
        raise CLIError(f"--file {path}: not UTF-8 text") from None


def cmd_profile_guidance(args) -> int:
    given = [x for x in (args.text is not None, args.file is not None, args.clear) if x]
    if len(given) > 1:
        raise CLIError("give at most one of TEXT, --file and --clear")
    if given and args.response is None:
        raise CLIError("name the RESPONSE whose guidance to change")
    with open_bank(args) as bank:
        if not given:
            if args.response is None:
                rows = [(r, " ".join(t.split()))
                        for r, t in bank.guidance(args.profile).items()]
                print(format_table(["RESPONSE", "GUIDANCE"], rows) if rows else
                      f"no guidance in profile {inert(args.profile)!r}")
            else:
                text = bank.guidance_for(args.profile, args.response)
                print(inert(text, keep_newlines=True) if text else "(no guidance)")
            return 0
        text = None if args.clear else (_text_from_file(args.file) if args.file is not None
                                        else args.text)
        if text is not None and not text.strip():
            raise CLIError("the guidance is empty; use --clear to remove it")
        bank.set_guidance(args.profile, args.response, text)
    what = "cleared" if text is None else "set"
    print(inert(f"{what} the guidance of {args.response!r} in {args.profile!r}"))
    return 0


def register_under_profile(sub) -> None:
    """Adds `guidance` to the `cm profile` actions."""
    p = sub.add_parser(
        "guidance", help="show or set what a reply for a response must say",
        description="Guidance: what a reply for this response (this meaning) must say or do. "
        "It goes into the answer prompt whenever CM chooses the response.")
    p.add_argument("profile")
    p.add_argument("response", nargs="?", help="the response (as listed by cm profile show)")
    p.add_argument("text", nargs="?", help="the guidance text")
    p.add_argument("--file", metavar="F", help="read the guidance from a UTF-8 text file")
    p.add_argument("--clear", action="store_true", help="remove the response's guidance")
    p.set_defaults(func=cmd_profile_guidance)
