"""The Rate view's parts beside the view itself: a queued query with its proposal, what the
profile has already rated or skipped, and the router that gives the view its keys wherever focus
is inside it (see rate_view's docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeySequence

from bank_store.records import normalise_response
from cm_desktop.cm.retrieval import normalise_text
from cm_desktop.datasets import Query

if TYPE_CHECKING:
    from cm_desktop.ui.rate_view import RateView


@dataclass
class QueueItem:
    query: Query
    trace: object = None          # cm Trace once proposed
    need: float | None = None     # coverage need (higher = the bank knows less), once ranked
    between: tuple[str, str] | None = None  # the two answers the bank hesitates between, too
    pinned: bool = False          # typed by the user: asked before the ranked ones
    requested: bool = False
    error: BaseException | None = None
    fingerprint: str | None = None  # the model that proposed it
    job: object = None              # the proposal's BackgroundOp while it runs

    def forget_proposal(self) -> None:
        """Drop the proposal and any still being computed (its result will not arrive)."""
        if self.job is not None and not self.job.done:
            self.job.cancel()
        self.trace, self.requested, self.error, self.job = None, False, None, None

    @property
    def text(self) -> str:
        return self.query.text


def doubt_text(item: QueueItem) -> str:
    """Why the coverage order asks this query now, for the card ("" where no ranking said)."""
    if item.pinned or item.between is None:
        return ""
    first, second = item.between
    return f"Asked now: your ratings leave it between “{first}” and “{second}”."


class SeenQueries:
    """The profile's rated queries (never offered again) and skipped ones (offered only when
    nothing else is left, oldest skip first). Both are read from the bank at a profile change and
    kept up to date as the user rates and skips, so a restart goes on where the user was."""

    def __init__(self) -> None:
        self.rated: set[str] = set()       # normalise_text, as the engine matches inputs
        self.skipped: dict[str, int] = {}  # the bank's skip key -> skip order

    def clear(self) -> None:
        self.rated, self.skipped = set(), {}

    def is_rated(self, text: str) -> bool:
        return normalise_text(text) in self.rated

    def set_rated(self, text: str, rated: bool) -> None:
        (self.rated.add if rated else self.rated.discard)(normalise_text(text))

    def is_skipped(self, text: str) -> bool:
        # the key bank_store.rate_state.query_key stores (without its length bound: a query read
        # from a dataset is only compared here)
        return normalise_response(text) in self.skipped

    def add_skipped(self, keys) -> None:
        for key in keys:
            self.skipped.setdefault(key, len(self.skipped))

    def order(self, items: list["QueueItem"]) -> list["QueueItem"]:
        """`items` without rated queries, skipped ones moved to the end (in skip order)."""
        kept = [it for it in items if not self.is_rated(it.text)]
        # a stable sort: the others (-1) keep their order ahead of every skipped one
        return sorted(kept, key=lambda it: self.skipped.get(normalise_response(it.text), -1))

    def gives_way(self, current: "QueueItem", queue: list["QueueItem"]) -> bool:
        """The query on screen is rated, or skipped while an unskipped one waits (queue ordered)."""
        return self.is_rated(current.text) or (
            self.is_skipped(current.text) and bool(queue) and not self.is_skipped(queue[0].text))

    def ranked(self, queue: list["QueueItem"]) -> list["QueueItem"]:
        """The coverage order: `order(queue)` with typed queries first, then the ranked ones
        neediest first, then those not ranked yet (loaded since), each group in queue order."""
        def key(it: "QueueItem") -> tuple[int, float]:
            if it.pinned:
                return 0, 0.0
            return (1, -it.need) if it.need is not None else (2, 0.0)
        return self.order(sorted(queue, key=key))


class KeyRouter(QObject):
    """Routes the Rate view's keys from the filter box (see the module docstring)."""

    def __init__(self, view: "RateView"):
        super().__init__(view)
        self.view = view

    def eventFilter(self, obj, event):  # noqa: N802 (Qt name)
        if event.type() == QEvent.ShortcutOverride and (
                event.matches(QKeySequence.Undo) or event.matches(QKeySequence.Redo)):
            # not the filter box's own text undo: Ctrl+Z means the rating (Edit > Undo)
            return True
        if event.type() != QEvent.KeyPress:
            return False
        v, key, text = self.view, event.key(), event.text()
        empty = not v.filter_edit.text()
        if event.modifiers() & (Qt.ControlModifier | Qt.AltModifier | Qt.MetaModifier):
            return False
        if obj is not v.filter_edit and text and text.strip() and text.isprintable() \
                and not (empty and text in "123456789"):
            v.filter_edit.setFocus()      # typing anywhere in the view filters the responses
            v.filter_edit.insert(text)
            return True
        if key in (Qt.Key_Return, Qt.Key_Enter):
            v.pick_filtered() if not empty else v.accept()
            return True
        if empty and text and text in "123456789" and len(text) == 1:
            v.pick_top(int(text))
            return True
        if empty and key == Qt.Key_Backspace:
            v.skip()
            return True
        if key == Qt.Key_Escape:
            v.filter_edit.clear()
            return True
        if key in (Qt.Key_Up, Qt.Key_Down, Qt.Key_PageUp, Qt.Key_PageDown):
            v.move_selection(key)
            return True
        return False
