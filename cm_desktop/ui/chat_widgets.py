"""The Chat view's widgets: one reply (header, streamed answer, Why panel, actions), the message
input, and the 👎 dialog that asks what was meant."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QToolButton,
    QVBoxLayout,
)

from cm_desktop.cm.choices import filter_responses
from cm_desktop.ui.plain import breakable, plain_label, set_plain
from cm_desktop.ui.resource_files import resource


def resource_icon(name: str) -> QIcon:
    """An icon the app ships (an empty icon if the file is missing: the tooltip still says it)."""
    try:
        return QIcon(str(resource(name)))
    except OSError:
        return QIcon()


class PickResponseDialog(QDialog):
    """👎: what did you mean? The bank's candidates for y' first, then the whole set, filterable."""

    def __init__(self, candidates: list[tuple[str, int]], model_top, responses: list[str], parent=None):
        super().__init__(parent)
        self.setWindowTitle("What did you mean?")
        self.chosen: str | None = None
        layout = QVBoxLayout(self)
        layout.addWidget(plain_label("Pick the response you meant. Suggestions first; type to search all."))
        self.suggestions = QListWidget()
        seen = set()
        for response, n in candidates:
            self._add(self.suggestions, f"{response}   (you chose it {n}× before)", response)
            seen.add(response)
        for response, p in model_top:
            if response not in seen:
                self._add(self.suggestions, f"{response}   (model {p:.0%})", response)
                seen.add(response)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Type to search the response set…")
        self.all_list = QListWidget()
        self._responses = list(responses)
        self.filter_edit.textChanged.connect(self._refilter)
        self._refilter()
        self.suggestions.itemDoubleClicked.connect(lambda it: self._choose(it.data(Qt.UserRole)))
        self.all_list.itemDoubleClicked.connect(lambda it: self._choose(it.data(Qt.UserRole)))
        self.suggestions.currentItemChanged.connect(lambda it, _p: it and self.all_list.clearSelection())
        layout.addWidget(self.suggestions, 1)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.all_list, 2)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self._ok)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(460, 520)

    @staticmethod
    def _add(widget: QListWidget, text: str, response: str) -> None:
        item = QListWidgetItem(text)
        item.setData(Qt.UserRole, response)
        widget.addItem(item)

    def _refilter(self) -> None:
        self.all_list.clear()
        for response in filter_responses(self._responses, self.filter_edit.text()):
            self._add(self.all_list, response, response)
        if self.filter_edit.text() and self.all_list.count():
            self.all_list.setCurrentRow(0)

    def _ok(self) -> None:
        for widget in (self.all_list, self.suggestions):
            item = widget.currentItem()
            if item is not None and item.isSelected():
                self._choose(item.data(Qt.UserRole))
                return

    def _choose(self, response: str) -> None:
        self.chosen = response
        self.accept()


class ReplyWidget(QFrame):
    """One assistant reply: header (the response), streamed answer, Why panel, toggles, ratings."""

    def __init__(self, view, reply_id: int, query: str):
        super().__init__()
        self.setObjectName("bubbleBot")
        self.view, self.reply_id, self.query = view, reply_id, query
        self.trace = None
        self.guidance = ""
        self.history: list[dict] = []   # the conversation before this reply's message
        self.message_id: int | None = None   # the stored reply (set once it is saved)
        self.answers = {"personal": "", "raw": ""}
        # Each answer's current stream: a newer one (a rewrite) makes pieces of older ones stale.
        self.stream_ids = {"personal": 0, "raw": 0}
        self.streaming: set[str] = set()   # answers whose current stream is still being written
        self.prompts: dict[str, list[dict]] = {}   # the messages each answer was written from
        self.showing = "personal"
        self.rated = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        self.header = plain_label("Thinking…")
        self.header.setObjectName("personalized")
        self.body = plain_label("", selectable=True)
        layout.addWidget(self.header)
        layout.addWidget(self.body)
        bar = QHBoxLayout()
        self.why_button = QToolButton(text="Why ▸", checkable=True)
        self.raw_button = QToolButton(text="Show raw model", checkable=True)
        # drawn icons, not emoji: a Linux without an emoji font shows those as empty boxes
        self.up_button = QToolButton()
        self.up_button.setIcon(resource_icon("icons/thumb-up.svg"))
        self.up_button.setAccessibleName("Right")
        self.up_button.setToolTip("Right: remember that this is what I meant")
        self.down_button = QToolButton()
        self.down_button.setIcon(resource_icon("icons/thumb-down.svg"))
        self.down_button.setAccessibleName("Wrong")
        self.down_button.setToolTip("Wrong: pick what I meant")
        self.regenerate_button = QToolButton(text="Regenerate")
        self.regenerate_button.setToolTip("Write this reply again")
        self.copy_button = QToolButton(text="Copy")
        self.copy_button.setToolTip("Copy the reply to the clipboard")
        for b in (self.why_button, self.raw_button, self.up_button, self.down_button,
                  self.regenerate_button, self.copy_button):
            b.setEnabled(False)
            bar.addWidget(b)
        bar.addStretch(1)
        layout.addLayout(bar)
        self.why_panel = plain_label("", selectable=True)
        self.why_panel.setObjectName("whyPanel")
        self.why_panel.setVisible(False)
        layout.addWidget(self.why_panel)
        self.guidance_button = QToolButton(text="Edit what I mean by this…")
        self.guidance_button.setToolTip("What a reply for this response must say")
        self.guidance_button.setVisible(False)
        self.guidance_button.clicked.connect(lambda: view.edit_guidance(self))
        layout.addWidget(self.guidance_button)
        self.why_button.toggled.connect(self._toggle_why)
        self.raw_button.toggled.connect(lambda on: view.show_answer(self, "raw" if on else "personal"))
        self.up_button.clicked.connect(lambda: view.thumbs_up(self))
        self.down_button.clicked.connect(lambda: view.thumbs_down(self))
        self.regenerate_button.clicked.connect(lambda: view.regenerate(self))
        self.copy_button.clicked.connect(
            lambda: QGuiApplication.clipboard().setText(self.answers[self.showing]))

    def set_trace(self, trace) -> None:
        self.trace = trace
        set_plain(self.header, f"→ {trace.chosen}")
        set_plain(self.why_panel, trace.explain())
        for b in (self.why_button, self.raw_button, self.up_button, self.down_button,
                  self.copy_button):
            b.setEnabled(True)
        if trace.chosen == trace.model_response:
            self.raw_button.setToolTip("The bank did not change the model's answer here.")

    def set_failed(self, message: str) -> None:
        set_plain(self.header, "No reply")
        set_plain(self.body, message)

    def _toggle_why(self, on: bool) -> None:
        self.why_button.setText("Why ▾" if on else "Why ▸")
        self.why_panel.setVisible(on)
        self.guidance_button.setVisible(on)

    def raw_is_personal(self) -> bool:
        """The bank did not change the model's answer: the raw answer is the personal one, the
        same text as it streams (never a copy taken while it was still being written)."""
        return self.trace is not None and self.trace.model_response == self.trace.chosen

    def new_stream(self, which: str) -> int:
        """Start a new stream of answer `which` (its earlier text and streams are dropped)."""
        self.stream_ids[which] += 1
        self.answers[which] = ""
        self.streaming.add(which)
        return self.stream_ids[which]

    def reset_answers(self) -> None:
        """The reply is rewritten (for another meaning): both answers start over, and pieces
        still arriving from their earlier streams are dropped."""
        for which in self.answers:
            self.stream_ids[which] += 1
            self.answers[which] = ""
        self.streaming.clear()

    def append(self, which: str, text: str) -> None:
        self.answers[which] += text
        if which == "personal" and self.raw_is_personal():
            self.answers["raw"] = self.answers["personal"]
        if which == self.showing or self.raw_is_personal():
            set_plain(self.body, breakable(self.answers[self.showing]))

    def show(self, which: str) -> None:  # noqa: A003 - the reply shows one of its two answers
        self.showing = which
        if self.raw_is_personal():
            self.answers["raw"] = self.answers["personal"]
        if self.trace is not None:
            response = self.trace.chosen if which == "personal" else self.trace.model_response
            prefix = "→ " if which == "personal" else "Raw model → "
            set_plain(self.header, prefix + response)
        set_plain(self.body, breakable(self.answers[which]))


class ChatInput(QPlainTextEdit):
    send_requested = Signal()
    stop_requested = Signal()

    def keyPressEvent(self, event):  # noqa: N802 (Qt name)
        if event.key() in (Qt.Key_Return, Qt.Key_Enter) and not event.modifiers() & Qt.ShiftModifier:
            self.send_requested.emit()
            return
        if event.key() == Qt.Key_Escape:
            self.stop_requested.emit()
            return
        super().keyPressEvent(event)
