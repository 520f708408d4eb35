"""The guidance editor: what a reply for one response (one meaning) must say or do.

Shown in the Bank view (the response of the selected entry) and, as a dialog, from a Chat reply's
Why panel ("Edit what I mean by this…"). Reads with a BankQuery, saves with a BankWrite; the next
reply for that response is written from the saved text.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QGroupBox, QHBoxLayout,
                               QPlainTextEdit, QPushButton, QVBoxLayout, QWidget)

from bank_store.guidance import MAX_GUIDANCE_CHARS
from cm_desktop.ui.conversation_list import NO_RATINGS
from cm_desktop.ui.ops import BankQuery, BankWrite
from cm_desktop.ui.plain import plain_label, set_plain


class GuidanceEditor(QGroupBox):
    saved = Signal(str, str)         # response, the text now stored ("" = none)

    def __init__(self, ctx, parent: QWidget | None = None, *, response: str | None = None):
        super().__init__("What a reply for this response must say", parent)
        self.ctx = ctx
        self._guidance: dict[str, str] = {}
        self._wanted = response
        layout = QVBoxLayout(self)
        self.response_box = QComboBox()
        self.response_box.setEditable(False)
        self.response_box.currentTextChanged.connect(self._show_response)
        self.text_edit = QPlainTextEdit()
        self.text_edit.setPlaceholderText(
            "e.g. Cards arrive within 3-5 working days; offer to track it in the app.")
        self.text_edit.setMaximumHeight(110)
        self.save_button = QPushButton("Save guidance")
        self.save_button.setObjectName("primary")
        self.save_button.clicked.connect(lambda: self.save())
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(lambda: self.save(""))
        self.status = plain_label("")
        row = QHBoxLayout()
        row.addWidget(self.response_box, 1)
        row.addWidget(self.save_button)
        row.addWidget(self.clear_button)
        layout.addLayout(row)
        layout.addWidget(self.text_edit)
        layout.addWidget(self.status)
        ctx.profile_changed.connect(lambda _p: self.reload())
        self.reload()

    def reload(self) -> None:
        profile = self.ctx.profile
        if not profile:
            return

        def loaded(result):
            responses, guidance = result
            if profile != self.ctx.profile:
                return
            self._guidance = guidance
            wanted = self._wanted or self.response_box.currentText()
            self.response_box.blockSignals(True)
            self.response_box.clear()
            self.response_box.addItems(responses)
            self.response_box.blockSignals(False)
            self.select(wanted if wanted in responses else (responses[0] if responses else ""))

        def read(job):
            with job.bank.transaction(write=False):
                return list(job.bank.get_profile(profile).responses), job.bank.guidance(profile)

        (BankQuery(self, read).supersedes((id(self), "guidance")).labelled("Reading the guidance")
         .success(loaded).run())

    def select(self, response: str) -> None:
        """Show (and edit) the guidance of `response`."""
        self._wanted = response
        index = self.response_box.findText(response)
        if index >= 0:
            self.response_box.setCurrentIndex(index)
            self._show_response(response)

    def current_response(self) -> str:
        return self.response_box.currentText()

    def _show_response(self, response: str) -> None:
        self.text_edit.setPlainText(self._guidance.get(response, ""))
        set_plain(self.status, "" if response in self._guidance else "No guidance yet: the reply "
                  "is written from the response's name only.")

    def save(self, text: str | None = None) -> None:
        profile, response = self.ctx.profile, self.current_response()
        if not profile or not response:
            return
        text = self.text_edit.toPlainText() if text is None else text
        if len(text) > MAX_GUIDANCE_CHARS:
            set_plain(self.status, f"Too long: at most {MAX_GUIDANCE_CHARS} characters.")
            return

        def done(_old):
            stored = text.strip()
            if stored:
                self._guidance[response] = stored
            else:
                self._guidance.pop(response, None)
            if response == self.current_response():
                self.text_edit.setPlainText(stored)
            set_plain(self.status, "Saved: the next reply for this response follows it."
                      if stored else "Cleared.")
            self.saved.emit(response, stored)

        (BankWrite(self, lambda job: job.bank.set_guidance(profile, response, text or None),
                   profile=NO_RATINGS).labelled("Saving the guidance").success(done).run())


class GuidanceDialog(QDialog):
    """The editor on its own, opened from a Chat reply for the response it was written for."""

    def __init__(self, ctx, response: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"What I mean by “{response}”")
        layout = QVBoxLayout(self)
        self.editor = GuidanceEditor(ctx, self, response=response)
        layout.addWidget(self.editor)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.editor.saved.connect(lambda *_: self.accept())
        self.resize(520, 280)
