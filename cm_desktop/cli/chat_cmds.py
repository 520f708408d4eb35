"""`cm chat` and `cm conversation`: the chat from the terminal, kept in the same bank (and the
same conversations) as the app's Chat view.

`cm chat --profile P` starts a conversation, `--conversation ID` continues one. On a terminal it
prompts; otherwise it reads one user message per line and prints each reply, so it can be
scripted. `cm conversation list|show|export|delete` look after the stored conversations.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cm_desktop.cli import CLIError, format_table, open_bank
from cm_desktop.cli.terminal_text import inert

MAX_LINE_CHARS = 20_000      # one message; a longer line is refused, not cut


def _conversation_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a conversation id is a whole number, not {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"a conversation id is positive, not {value}")
    return value


def _bounded(kind, low, high):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value
    return parse


# ---- cm chat ------------------------------------------------------------------------------------

def cmd_chat(args) -> int:
    from cm_desktop.cli.engine_cmds import Progress, _load_backend
    from cm_desktop.cm import chat
    from cm_desktop.cm.engine import CMEngine
    from cm_desktop.paths import tuned_encoders_dir

    if args.profile is None and args.conversation is None:
        raise CLIError("give --profile to start a conversation or --conversation ID to continue one")
    bank = open_bank(args)
    if args.conversation is not None:
        conv = bank.conversation(args.conversation)
        if args.profile is not None and args.profile != conv.profile:
            raise CLIError(f"conversation {conv.id} belongs to profile {conv.profile!r}, "
                           f"not {args.profile!r}")
        profile = conv.profile
    else:
        profile = bank.get_profile(args.profile).name
        conv = None
    backend = _load_backend(args)
    interactive = sys.stdin.isatty()
    out, err = sys.stdout, sys.stderr
    try:
        engine = CMEngine(backend, bank, profile, strategy=args.strategy, variant=args.memory,
                          calibrate=not args.no_calibrate,
                          length_normalise=args.length_normalise)
        # the app's kept tuning serves here too, and a new one is kept for the app
        engine.tuning.folder = tuned_encoders_dir()
        engine.tuning.progress = Progress("tuning the encoder on your ratings", err)
        if conv is None:
            conv = bank.create_conversation(profile)
        history = chat.history_messages(conv.messages)
        print(f"conversation {conv.id} ({profile}); /why explains the last choice, /quit leaves",
              file=err, flush=True)
        last = None
        while True:
            if interactive:
                out.write("> ")
                out.flush()
            line = sys.stdin.readline()
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if len(text) > MAX_LINE_CHARS:
                print(f"cm: message of {len(text)} characters skipped (at most "
                      f"{MAX_LINE_CHARS})", file=err, flush=True)
                continue
            if text == "/quit":
                break
            if text == "/why":
                out.write(inert(last.explain() if last else "no decision yet", keep_newlines=True)
                          + "\n")
                out.flush()
                continue
            bank.add_message(conv.id, "user", text)
            last = chat.decide_turn(engine, text, history)
            guidance = bank.guidance_for(profile, last.chosen)
            messages = chat.reply_messages(backend, text, last.chosen, guidance, history,
                                           args.max_tokens, guidance_of=bank.guidance(profile))
            if interactive:
                out.write(f"[{inert(last.chosen)}] ")
            else:       # stdout carries the replies alone; what was chosen goes to stderr
                print(f"[{inert(last.chosen)}]", file=err, flush=True)
            reply: list[str] = []
            try:
                for piece in chat.clean_reply(backend.stream_chat(
                        messages, max_tokens=args.max_tokens, temperature=args.temperature)):
                    reply.append(piece)
                    out.write(inert(piece, keep_newlines=True))
                    out.flush()
            finally:    # an interrupted reply is kept as far as it got
                bank.add_message(conv.id, "assistant", "".join(reply), response=last.chosen,
                                 trace=last.to_dict())
            out.write("\n")
            out.flush()
            history += [{"role": "user", "content": text},
                        {"role": "assistant", "content": "".join(reply),
                         "meaning": last.chosen}]
    finally:
        backend.close()
    return 0


# ---- cm conversation ----------------------------------------------------------------------------

def cmd_conversation_list(args) -> int:
    with open_bank(args) as bank:
        found = bank.conversations(args.profile, search=args.search)
    if args.json:
        print(json.dumps([c.to_dict() for c in found], ensure_ascii=False, indent=2))
        return 0
    if not found:
        print(f"no conversations in profile {inert(args.profile)!r}")
        return 0
    rows = [(c.id, c.messages, c.updated[:16].replace("T", " "),
             c.title or "(untitled)") for c in found]
    print(format_table(["ID", "MESSAGES", "UPDATED (UTC)", "TITLE"], rows))
    return 0


def cmd_conversation_show(args) -> int:
    with open_bank(args) as bank:
        conv = bank.conversation(args.id)
    if args.json:
        print(json.dumps({**conv.summary().to_dict(), "turns": [
            {"role": m.role, "text": m.text, "response": m.response, "rating_id": m.rating_id,
             "created": m.created} for m in conv.messages]}, ensure_ascii=False, indent=2))
        return 0
    print(inert(f"conversation {conv.id}: {conv.title or '(untitled)'}  "
                        f"[{conv.profile}]"))
    for m in conv.messages:
        who = "you" if m.role == "user" else f"assistant [{m.response or '-'}]"
        print(inert(f"{who}: {m.text}", keep_newlines=True))
    return 0


def cmd_conversation_export(args) -> int:
    from bank_store import conversation_markdown

    dest = Path(args.file).expanduser()
    if dest.exists() and not args.force:
        raise CLIError(f"{dest} exists; pass --force to replace it")
    with open_bank(args) as bank:
        text = conversation_markdown(bank.conversation(args.id))
    tmp = dest.with_name(dest.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(dest)       # a failed write never leaves half a file under the real name
    print(f"wrote conversation {args.id} to {dest}")
    return 0


def cmd_conversation_delete(args) -> int:
    with open_bank(args) as bank:
        conv = bank.delete_conversation(args.id)
    print(inert(f"deleted conversation {conv.id} ({conv.title or 'untitled'}, "
                        f"{len(conv.messages)} messages); its ratings are kept"))
    return 0


def register(subparsers) -> None:
    from cm_desktop.cli.engine_cmds import STRATEGY_NAMES, _add_backend_options
    from cm_desktop.cm import DEFAULT_VARIANT, VARIANTS as VARIANT_NAMES

    p = subparsers.add_parser(
        "chat", help="chat with CM applied; kept as a conversation in the bank",
        description="Each message is classified with CM, then the model answers for that meaning "
        "following the response's guidance. On a terminal: /why shows the last decision, /quit "
        "leaves. Otherwise one message is read per line and each reply printed.")
    p.add_argument("--profile", help="start a new conversation in this profile")
    p.add_argument("--conversation", type=_conversation_id, metavar="ID",
                   help="continue this conversation (see: cm conversation list)")
    p.add_argument("--strategy", choices=STRATEGY_NAMES, default="vanilla")
    p.add_argument("--memory", choices=VARIANT_NAMES, default=DEFAULT_VARIANT)
    p.add_argument("--max-tokens", type=_bounded(int, 1, 8192), default=160, metavar="N",
                   help="at most N tokens a reply (1-8192, default 160)")
    p.add_argument("--temperature", type=_bounded(float, 0.0, 2.0), default=0.7,
                   help="0-2, default 0.7")
    _add_backend_options(p)
    p.set_defaults(func=cmd_chat)

    conv = subparsers.add_parser("conversation", help="list, show, export and delete chats",
                                 description="The conversations kept in the bank.")
    sub = conv.add_subparsers(dest="conversation_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="a profile's conversations, newest first")
    p.add_argument("--profile", required=True)
    p.add_argument("--search", help="only those whose title or text contains this")
    p.add_argument("--json", action="store_true",
                   help="print a JSON array (id, title, messages, created, updated, profile)")
    p.set_defaults(func=cmd_conversation_list)
    p = sub.add_parser("show", help="print a conversation")
    p.add_argument("id", type=_conversation_id)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_conversation_show)
    p = sub.add_parser("export", help="write a conversation as Markdown")
    p.add_argument("id", type=_conversation_id)
    p.add_argument("file", metavar="FILE.md")
    p.add_argument("--force", action="store_true", help="replace FILE.md if it exists")
    p.set_defaults(func=cmd_conversation_export)
    p = sub.add_parser("delete", help="delete a conversation (its ratings are kept)")
    p.add_argument("id", type=_conversation_id)
    p.set_defaults(func=cmd_conversation_delete)
