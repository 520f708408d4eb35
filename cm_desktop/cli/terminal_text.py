"""Text shown on a terminal is inert: control characters appear escaped, never act.

Bank text and file text come from anyone (a third-party paper file, a model's reply). Printed
raw, `ESC ] 0 ; title BEL` retitles the terminal, `ESC [ 2 J` clears it and the 8-bit CSI
`\\x9b` works on many terminals too. Every print of such text goes through `inert` (tables,
error lines, chat replies); what is stored stays exact, only its display is escaped.

Escaped: C0 controls (tab and newline too, unless `keep_newlines`), DEL, C1 controls, the
Unicode line/paragraph separators and bidirectional controls (they reorder what follows on the
screen) and lone surrogates (a terminal cannot encode them). Each shows as a Python-style escape
(`\\x1b`, `\\u202e`), so a person sees exactly which character was there.
"""

from __future__ import annotations

import re

# C0 except \n (handled by keep_newlines), DEL, C1, line/paragraph separators, bidi controls
# (LRM/RLM, LRE..RLO, LRI..PDI, ALM), lone surrogates
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e"
                     "\u2066-\u2069\ud800-\udfff]")
_UNSAFE_WITH_NEWLINE = re.compile("[\n]|" + _UNSAFE.pattern)


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: object, *, keep_newlines: bool = False) -> str:
    """`text` (anything; str() of it) with every control character visibly escaped.

    keep_newlines=True leaves "\\n" as a line break (multi-line replies); table cells and
    one-line messages keep the default, so one record is one line.
    """
    text = text if isinstance(text, str) else str(text)
    pattern = _UNSAFE if keep_newlines else _UNSAFE_WITH_NEWLINE
    return pattern.sub(_escape, text)
