"""`cm models`: the model library from the terminal (list, pull, add, rm, use, login, catalogue)."""

from __future__ import annotations

import json
import sys
import time

from cm_desktop.cli import CLIError, format_table
from cm_desktop.cli.terminal_text import inert


def _library():
    from cm_desktop.models import ModelLibrary

    return ModelLibrary()


def _gb(n: int | None) -> str:
    from cm_desktop.models.gguf_info import human_bytes

    return human_bytes(n) if n else "-"


def cmd_list(args) -> int:
    from cm_desktop.settings import Settings

    models = _library().list(with_sha=args.json)
    if args.json:
        print(json.dumps([m.to_dict() for m in models], indent=1))
        return 0
    current = Settings.load().model_path
    rows = []
    for m in models:
        used = "*" if (current == m.path or (not current and m.source == "embedded")) else ""
        rows.append((used, m.name, m.source, m.architecture, m.quantization,
                     m.context_length or "-", "yes" if m.chat_template else "no",
                     _gb(m.size_bytes), _gb(m.memory_bytes), m.problem or ""))
    print(format_table(["", "NAME", "SOURCE", "ARCH", "QUANT", "CONTEXT", "TEMPLATE", "SIZE",
                        "MEMORY", "PROBLEM"], rows))
    return 0


def cmd_catalogue(args) -> int:
    from cm_desktop.models import CATALOGUE

    rows = [(e.title, e.repo_id, e.filename, _gb(e.size_bytes), _gb(e.memory_bytes), e.licence)
            for e in CATALOGUE]
    print(format_table(["MODEL", "REPO", "FILE", "SIZE", "MEMORY", "LICENCE"], rows))
    print("download one with: cm models pull REPO FILE")
    return 0


class _TerminalBar:
    """`downloading  1.2 GB / 4.9 GB  24%  35.1 MB/s  ETA 1m45s` redrawn in place on a terminal."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self._last = 0.0

    def __call__(self, p) -> None:
        now = time.monotonic()
        final = p.done >= p.total
        if not final and now - self._last < (0.2 if self.tty else 5.0):
            return
        self._last = now
        pct = 100 * p.done / max(p.total, 1)
        line = f"{p.phase:<12}{_gb(p.done):>9} / {_gb(p.total):<9}{pct:5.1f}%"
        if p.phase == "downloading":
            eta = "-" if p.eta_s is None else f"{int(p.eta_s) // 60}m{int(p.eta_s) % 60:02d}s"
            line += f"  {_gb(p.bytes_per_s)}/s  ETA {eta}"
        self.stream.write(("\r" + line.ljust(70)) if self.tty else line + "\n")
        if self.tty and final:
            self.stream.write("\n")
        self.stream.flush()


def cmd_pull(args) -> int:
    from cm_desktop.models.download import pull

    lib = _library()
    m = pull(args.repo_id, args.filename, revision=args.revision, library=lib,
             progress=_TerminalBar())
    print(inert(f"{m.name}: {_gb(m.size_bytes)}, {m.architecture} {m.quantization}, sha256 verified; "
          f"use it with: cm models use {m.name}"))
    _warn_if_too_big(m)
    return 0


def cmd_add(args) -> int:
    m = _library().add(args.path)
    print(inert(f"added {m.name} ({m.path}, {m.architecture} {m.quantization}); the file stays "
                "where it is"))
    _warn_if_too_big(m)
    return 0


def cmd_rm(args) -> int:
    lib = _library()
    m = lib.get(args.name)
    what = "delete the file" if m.source == "downloaded" else "forget it (the file stays)"
    if m.source != "embedded" and not args.yes:
        if not sys.stdin.isatty():
            raise CLIError(f"removing {m.name} would {what}; add --yes to confirm")
        answer = input(inert(f"remove {m.name} ({m.path}): {what}? [y/N] "))
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return 1
    lib.remove(args.name)
    print(inert(f"removed {m.name}" + (" (file deleted)" if m.source == "downloaded" else "")))
    return 0


def _warn_if_too_big(m) -> None:
    from cm_desktop.models.gguf_info import available_memory, fit_warning

    warning = fit_warning(m.memory_bytes, available_memory())
    if warning:
        print(inert(f"cm: warning: {m.name}: {warning}"), file=sys.stderr)


def cmd_use(args) -> int:
    from cm_desktop.settings import Settings

    m = _library().get(args.name)
    if m.problem:
        raise CLIError(f"{m.name} cannot be used: {m.problem}")
    settings = Settings.load()
    settings.backend_kind = "llama_cpp"
    settings.model_path = "" if m.source == "embedded" else m.path
    settings.save()
    print(inert(f"the app and `cm` now use {m.name} (llama.cpp); ratings made from now on carry "
                "its fingerprint: `cm bank rebase --profile P` asks it again about your rated "
                "queries"))
    _warn_if_too_big(m)
    return 0


def cmd_login(args) -> int:
    import getpass

    from cm_desktop.credentials import set_hf_token

    token = getpass.getpass("Hugging Face access token (kept in the OS keyring): ") \
        if sys.stdin.isatty() else sys.stdin.readline().strip()
    set_hf_token(token)
    print("token stored in the keyring; gated repos you have been granted can now be pulled")
    return 0


def warn_before_loading(path: str | None) -> None:
    """One warning line on stderr when the GGUF about to be loaded will not fit in free memory."""
    from pathlib import Path

    from cm_desktop.backends import default_model_path
    from cm_desktop.backends.base import ModelFileError
    from cm_desktop.models.gguf_info import (available_memory, fit_warning, memory_needed,
                                             read_info)

    try:
        p = Path(path) if path else default_model_path()
        if not p.is_file():
            return
        warning = fit_warning(memory_needed(p.stat().st_size, read_info(p)), available_memory())
    except ModelFileError:
        return                      # the backend's own load gives the clear error
    if warning:
        print(inert(f"cm: warning: {p.name}: {warning}"), file=sys.stderr)


def resolve_model_option(value: str | None) -> str | None:
    """A --model value: a path as given, or a library name turned into its file's path."""
    if not value:
        return value
    return str(_library().resolve(value))


def register(subparsers) -> None:
    models = subparsers.add_parser("models", help="the model library: list, download, add, use",
                                   description="Local GGUF models: the embedded Gemma, files "
                                   "downloaded into the app's models folder, files added by path.")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="the local models")
    p.add_argument("--json", action="store_true", help="a JSON array (with each file's sha256)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("catalogue", help="recommended models to download")
    p.set_defaults(func=cmd_catalogue)

    p = sub.add_parser("pull", help="download a GGUF from a Hugging Face repo",
                       description="Download REPO_ID's FILENAME into the models folder; resumes "
                       "an interrupted download; the file's sha256 is checked against the hub's. "
                       "HF_ENDPOINT points it at a mirror.")
    p.add_argument("repo_id")
    p.add_argument("filename")
    p.add_argument("--revision", default="main")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("add", help="add a GGUF file where it is")
    p.add_argument("path")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("rm", help="remove a model (a downloaded file is deleted)")
    p.add_argument("name")
    p.add_argument("--yes", action="store_true", help="do not ask")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("use", help="make a model the one the app and `cm` use")
    p.add_argument("name")
    p.set_defaults(func=cmd_use)

    p = sub.add_parser("login", help="store a Hugging Face token in the OS keyring")
    p.set_defaults(func=cmd_login)
