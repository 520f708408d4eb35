"""Plain-text widgets: text from banks, datasets and models is shown as characters, never as markup.

Qt guesses rich text (Qt.AutoText) when a string looks like HTML, so an imported
`<img src=http://...>` would make a label fetch a URL. Every label built here is Qt.PlainText.
"""

from __future__ import annotations

import re

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget


def plain_label(text: str = "", parent: QWidget | None = None, *, wrap: bool = True,
                selectable: bool = False) -> QLabel:
    label = QLabel(parent)
    label.setTextFormat(Qt.PlainText)
    label.setWordWrap(wrap)
    if selectable:
        label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    label.setText(text)
    return label


def set_plain(label: QLabel, text: str) -> None:
    """Set a label's text, making sure it stays plain (for labels built elsewhere, e.g. Designer)."""
    label.setTextFormat(Qt.PlainText)
    label.setText(text)


_LONG_RUN = re.compile(r"\S{%d}(?=\S)" % 24)


def breakable(text: str) -> str:
    """`text` for display in a wrapping label: a zero-width space after every 24 characters of
    an unbroken run, so a runaway reply ("1000000000…") wraps instead of widening the view.
    Only what is shown changes; copy the original."""
    return _LONG_RUN.sub(lambda m: m.group() + "\u200b", text)


def one_line(text: str, limit: int = 120) -> str:
    """A single display line: newlines folded, long text shortened with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
