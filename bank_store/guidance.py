"""Guidance: what a reply for one of a profile's responses must say or do, written by the user.

A profile's response is more than a label: "card arrival" can carry "cards arrive within 3-5
working days; offer to track it in the app". The answer prompt is built from it. One text per
(profile, response); the response must be a member of the profile's response set (matched as
responses are everywhere: case and whitespace do not matter) and is stored as that member.
"""

from __future__ import annotations

import sqlite3
from typing import Mapping

from .errors import BankError
from .records import Profile, check_text, normalise_response, utc_now

MAX_GUIDANCE_CHARS = 4000   # a paragraph or two: it goes into every reply's prompt


def check_guidance(text: object, response: str = "") -> str:
    """Guidance text as stored: text, stripped, non-empty, bounded, no NUL/control characters
    other than newlines and tabs (it is shown in widgets and on terminals)."""
    where = f"guidance for {response!r}" if response else "guidance"
    text = check_text(text, where).strip()
    if len(text) > MAX_GUIDANCE_CHARS:
        raise BankError(f"{where} is {len(text)} characters; at most {MAX_GUIDANCE_CHARS}")
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise BankError(f"{where} contains control characters")
    return text


class GuidanceMixin:
    """DiscrepancyBank's guidance methods (uses its _txn and _get_profile)."""

    @staticmethod
    def _member(p: Profile, response: object) -> str:
        check_text(response, "response")
        key = normalise_response(response)
        for r in p.responses:
            if normalise_response(r) == key:
                return r
        raise BankError(f"profile {p.name!r} has no response {' '.join(response.split())!r}")

    def guidance(self, profile: str) -> dict[str, str]:
        """{response: guidance} for the profile's current responses that have some."""
        with self._txn(write=False) as conn:
            p = self._get_profile(conn, profile)
            rows = dict(conn.execute("SELECT response, text FROM guidance WHERE profile_id = ?",
                                     (p.id,)).fetchall())
        return {r: rows[r] for r in p.responses if r in rows}

    def guidance_for(self, profile: str, response: str) -> str:
        """The guidance of one response ("" when it has none)."""
        with self._txn(write=False) as conn:
            p = self._get_profile(conn, profile)
            member = self._member(p, response)
            row = conn.execute("SELECT text FROM guidance WHERE profile_id = ? AND response = ?",
                               (p.id, member)).fetchone()
        return row[0] if row else ""

    def set_guidance(self, profile: str, response: str, text: str | None) -> str | None:
        """Set (or with None / blank text, clear) one response's guidance. Returns the text that
        was there before (None when there was none), so a caller can undo."""
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            member = self._member(p, response)
            return self._put_guidance(conn, p, member, text)

    def set_guidances(self, profile: str, texts: Mapping[str, str | None]) -> int:
        """Set many at once (all or none); returns how many responses changed."""
        if not isinstance(texts, Mapping):
            raise BankError("guidance must be a mapping of response -> text")
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            changed = 0
            for response, text in texts.items():
                member = self._member(p, response)
                new = None if text is None or (isinstance(text, str) and not text.strip()) \
                    else check_guidance(text, member)
                if self._put_guidance(conn, p, member, text) != new:
                    changed += 1
            return changed

    @staticmethod
    def _put_guidance(conn: sqlite3.Connection, p: Profile, member: str,
                      text: str | None) -> str | None:
        row = conn.execute("SELECT text FROM guidance WHERE profile_id = ? AND response = ?",
                           (p.id, member)).fetchone()
        if text is None or (isinstance(text, str) and not text.strip()):
            conn.execute("DELETE FROM guidance WHERE profile_id = ? AND response = ?",
                         (p.id, member))
        else:
            conn.execute(
                "INSERT INTO guidance (profile_id, response, text, updated) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (profile_id, response) DO UPDATE SET text = excluded.text,"
                " updated = excluded.updated",
                (p.id, member, check_guidance(text, member), utc_now()))
        return row[0] if row else None
