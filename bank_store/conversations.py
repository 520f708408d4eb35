"""Conversations kept in the bank: a profile's chats, their turns, and what each reply was based on.

A conversation belongs to one profile and holds its messages in order. An assistant message keeps
the meaning CM chose for it (`response`), the decision trace (JSON) and the id of the rating a
thumbs up/down produced. Ratings live in their own table and are never removed with a
conversation. Deleting returns the whole conversation so it can be put back (undo) with the same
ids.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from .errors import BankError
from .records import check_text, utc_now

ROLES = ("user", "assistant")
MAX_TITLE_CHARS = 200
MAX_MESSAGE_CHARS = 100_000
MAX_TRACE_CHARS = 200_000
MAX_SEARCH_CHARS = 200
AUTO_TITLE_CHARS = 60        # a new conversation is titled by its first message, cut here


class ConversationNotFoundError(BankError):
    pass


@dataclass(frozen=True)
class Message:
    id: int
    role: str
    text: str
    response: str | None = None      # assistant: the meaning CM chose
    trace: dict | None = None        # assistant: the decision trace
    rating_id: str | None = None     # assistant: the rating a thumbs up/down produced
    created: str = ""


@dataclass(frozen=True)
class ConversationSummary:
    id: int
    profile: str
    title: str
    created: str
    updated: str
    messages: int                    # how many

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "profile": self.profile, "title": self.title,
                "messages": self.messages, "created": self.created, "updated": self.updated}


@dataclass(frozen=True)
class Conversation:
    id: int
    profile: str
    title: str
    created: str
    updated: str
    messages: tuple[Message, ...]

    def summary(self) -> ConversationSummary:
        return ConversationSummary(self.id, self.profile, self.title, self.created, self.updated,
                                   len(self.messages))


def check_title(title: object) -> str:
    """A title as stored: text, one line (whitespace collapsed), bounded; may be empty."""
    title = " ".join(check_text(title, "title", allow_empty=True).split())
    if len(title) > MAX_TITLE_CHARS:
        raise BankError(f"the title is {len(title)} characters; at most {MAX_TITLE_CHARS}")
    return title


def auto_title(text: str) -> str:
    one_line = " ".join(text.split())
    if len(one_line) <= AUTO_TITLE_CHARS:
        return one_line
    return one_line[:AUTO_TITLE_CHARS - 1].rstrip() + "…"


def _check_message_text(text: object, role: str) -> str:
    text = check_text(text, f"{role} message", allow_empty=role == "assistant")
    if len(text) > MAX_MESSAGE_CHARS:
        raise BankError(f"the {role} message is {len(text)} characters; "
                        f"at most {MAX_MESSAGE_CHARS}")
    if "\x00" in text:
        raise BankError(f"the {role} message contains a NUL character")
    return text


def _trace_json(trace: object) -> str | None:
    if trace is None:
        return None
    if not isinstance(trace, dict):
        raise BankError(f"a decision trace must be a dict, not {type(trace).__name__}")
    try:
        text = json.dumps(trace, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise BankError(f"the decision trace cannot be stored as JSON: {e}") from None
    if len(text) > MAX_TRACE_CHARS:
        raise BankError(f"the decision trace is {len(text)} characters; at most "
                        f"{MAX_TRACE_CHARS}")
    return text


def _optional_text(value: object, what: str) -> str | None:
    return None if value is None else check_text(value, what)


def _message(row: tuple) -> Message:
    trace = json.loads(row[4]) if row[4] else None
    return Message(row[0], row[1], row[2], row[3], trace, row[5], row[6])


_MESSAGE_COLUMNS = "id, role, text, response, trace, rating_id, created"
_SUMMARY_SELECT = (
    "SELECT c.id, p.name, c.title, c.created, c.updated,"
    " (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id)"
    " FROM conversations c JOIN profiles p ON p.id = c.profile_id")


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ConversationsMixin:
    """DiscrepancyBank's conversation methods (uses its _txn and _get_profile)."""

    # ---- reading ------------------------------------------------------------------------------

    @staticmethod
    def _check_id(conversation_id: object) -> int:
        if type(conversation_id) is not int or conversation_id < 1:
            raise BankError(f"a conversation id is a positive whole number, "
                            f"not {conversation_id!r}")
        return conversation_id

    def _read_conversation(self, conn: sqlite3.Connection, conversation_id: int) -> Conversation:
        row = conn.execute("SELECT c.id, p.name, c.title, c.created, c.updated FROM conversations c"
                           " JOIN profiles p ON p.id = c.profile_id WHERE c.id = ?",
                           (self._check_id(conversation_id),)).fetchone()
        if row is None:
            raise ConversationNotFoundError(f"no conversation with id {conversation_id}")
        messages = tuple(_message(r) for r in conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id",
            (row[0],)))
        return Conversation(*row, messages)

    def conversation(self, conversation_id: int) -> Conversation:
        with self._txn(write=False) as conn:
            return self._read_conversation(conn, conversation_id)

    def conversations(self, profile: str, search: str | None = None) -> list[ConversationSummary]:
        """A profile's conversations, the most recently updated first; `search` keeps those whose
        title or any message contains it (case-insensitive for ASCII letters)."""
        sql, args = _SUMMARY_SELECT + " WHERE c.profile_id = ?", []
        if search is not None:
            search = check_text(search, "search", allow_empty=True).strip()
            if len(search) > MAX_SEARCH_CHARS:
                raise BankError(f"the search is {len(search)} characters; "
                                f"at most {MAX_SEARCH_CHARS}")
        with self._txn(write=False) as conn:
            p = self._get_profile(conn, profile)
            args.append(p.id)
            if search:
                pattern = _like_pattern(search)
                sql += (" AND (c.title LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m"
                        " WHERE m.conversation_id = c.id AND m.text LIKE ? ESCAPE '\\'))")
                args += [pattern, pattern]
            rows = conn.execute(sql + " ORDER BY c.updated DESC, c.id DESC", args).fetchall()
        return [ConversationSummary(*r) for r in rows]

    def latest_conversation(self, profile: str) -> ConversationSummary | None:
        """The profile's most recently updated conversation (reopened after a restart)."""
        found = self.conversations(profile)
        return found[0] if found else None

    # ---- writing ------------------------------------------------------------------------------

    def create_conversation(self, profile: str, title: str = "") -> Conversation:
        """A new, empty conversation; an empty title is replaced by the first user message."""
        title = check_title(title)
        now = utc_now()
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            cur = conn.execute("INSERT INTO conversations (profile_id, title, created, updated)"
                               " VALUES (?, ?, ?, ?)", (p.id, title, now, now))
            return self._read_conversation(conn, cur.lastrowid)

    def rename_conversation(self, conversation_id: int, title: str) -> Conversation:
        title = check_title(title)
        with self._txn(write=True) as conn:
            self._read_conversation(conn, conversation_id)
            conn.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id))
            return self._read_conversation(conn, conversation_id)

    def add_message(self, conversation_id: int, role: str, text: str, *,
                    response: str | None = None, trace: dict | None = None,
                    rating_id: str | None = None) -> Message:
        """Append one turn; the first user turn titles an untitled conversation."""
        if role not in ROLES:
            raise BankError(f"a message's role is one of {', '.join(ROLES)}, not {role!r}")
        text = _check_message_text(text, role)
        if role == "user" and (response is not None or trace is not None or rating_id is not None):
            raise BankError("only an assistant message carries a response, trace or rating")
        response = _optional_text(response, "response")
        rating_id = _optional_text(rating_id, "rating id")
        trace_text = _trace_json(trace)
        now = utc_now()
        with self._txn(write=True) as conn:
            conv = self._read_conversation(conn, conversation_id)
            cur = conn.execute(
                "INSERT INTO messages (conversation_id, role, text, response, trace, rating_id,"
                " created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (conv.id, role, text, response, trace_text, rating_id, now))
            title = conv.title or (auto_title(text) if role == "user" else "")
            conn.execute("UPDATE conversations SET updated = ?, title = ? WHERE id = ?",
                         (now, title, conv.id))
            return _message(conn.execute(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?",
                                         (cur.lastrowid,)).fetchone())

    def _assistant_message(self, conn: sqlite3.Connection, message_id: object) -> tuple:
        if type(message_id) is not int:
            raise BankError(f"a message id is a whole number, not {message_id!r}")
        row = conn.execute("SELECT conversation_id, role FROM messages WHERE id = ?",
                           (message_id,)).fetchone()
        if row is None:
            raise BankError(f"no message with id {message_id}")
        if row[1] != "assistant":
            raise BankError(f"message {message_id} is the user's, not a reply")
        return row

    def replace_reply(self, message_id: int, text: str, *, response: str | None = None,
                      trace: dict | None = None) -> Message:
        """A regenerated reply takes the old one's place (same id, same rating)."""
        text = _check_message_text(text, "assistant")
        response = _optional_text(response, "response")
        trace_text = _trace_json(trace)
        now = utc_now()
        with self._txn(write=True) as conn:
            conversation_id, _ = self._assistant_message(conn, message_id)
            conn.execute("UPDATE messages SET text = ?, response = ?, trace = ?, created = ?"
                         " WHERE id = ?", (text, response, trace_text, now, message_id))
            conn.execute("UPDATE conversations SET updated = ? WHERE id = ?",
                         (now, conversation_id))
            return _message(conn.execute(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?",
                                         (message_id,)).fetchone())

    def set_message_rating(self, message_id: int, rating_id: str | None) -> None:
        """Record (or with None, forget) which rating a reply's thumbs up/down produced."""
        rating_id = _optional_text(rating_id, "rating id")
        with self._txn(write=True) as conn:
            self._assistant_message(conn, message_id)
            conn.execute("UPDATE messages SET rating_id = ? WHERE id = ?", (rating_id, message_id))

    def delete_conversation(self, conversation_id: int) -> Conversation:
        """Remove a conversation and its messages (never its ratings); returns what was removed,
        which restore_conversation puts back."""
        with self._txn(write=True) as conn:
            conv = self._read_conversation(conn, conversation_id)
            conn.execute("DELETE FROM conversations WHERE id = ?", (conv.id,))
            return conv

    def restore_conversation(self, conv: Conversation) -> Conversation:
        """Put a deleted conversation back with its ids, title, times and messages."""
        if not isinstance(conv, Conversation):
            raise BankError(f"expected a Conversation, not {type(conv).__name__}")
        rows = []
        for m in conv.messages:
            if m.role not in ROLES:
                raise BankError(f"message {m.id}: role {m.role!r}")
            rows.append((m.id, conv.id, m.role, _check_message_text(m.text, m.role), m.response,
                         _trace_json(m.trace), m.rating_id, m.created))
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, conv.profile)
            try:
                conn.execute("INSERT INTO conversations (id, profile_id, title, created, updated)"
                             " VALUES (?, ?, ?, ?, ?)", (self._check_id(conv.id), p.id,
                                                         check_title(conv.title), conv.created,
                                                         conv.updated))
                conn.executemany(
                    "INSERT INTO messages (id, conversation_id, role, text, response, trace,"
                    " rating_id, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            except sqlite3.IntegrityError:
                raise BankError(f"conversation {conv.id} (or one of its messages) is already "
                                "in the bank") from None
            return self._read_conversation(conn, conv.id)


def conversation_markdown(conv: Conversation) -> str:
    """A conversation as a Markdown document: title, profile, then each turn with its meaning."""
    lines = [f"# {conv.title or 'Conversation'}", "",
             f"Profile: {conv.profile} · started {conv.created[:16].replace('T', ' ')} UTC", ""]
    for m in conv.messages:
        if m.role == "user":
            lines.append("**You:**")
        else:
            meaning = f" (meaning: {m.response})" if m.response else ""
            lines.append(f"**Assistant{meaning}:**")
        lines += ["", m.text.strip() or "(no reply)", ""]
    return "\n".join(lines).rstrip() + "\n"
