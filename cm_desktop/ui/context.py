"""The one object every view gets: settings, the bank, the inference worker, the current profile,
app-wide undo, how errors are shown, and `bank_changed(profile)`, announced once after each bank
write (`ops.BankWrite` emits it; views listen to it)."""

from __future__ import annotations

import logging

import shiboken6
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QMessageBox, QWidget

from cm_desktop.settings import Settings
from cm_desktop.ui.errors import explain
from cm_desktop.ui.inference import InferenceWorker

log = logging.getLogger(__name__)


class AppContext(QObject):
    profile_changed = Signal(str)
    bank_changed = Signal(str)
    status_message = Signal(str)
    error_shown = Signal(str, str)   # title, full plain text (tests and the log listen)

    def __init__(self, settings: Settings, bank, inference: InferenceWorker | None = None, parent=None):
        super().__init__(parent)
        self.settings = settings
        self.bank = bank
        self.inference = inference or InferenceWorker(bank, engine_options=self._engine_options)
        self._profile: str | None = None
        self._undo = QUndoStack(self)
        self._open_boxes: list[QMessageBox] = []
        # A rating written anywhere makes the cached engine re-read the bank before its next query.
        self.bank_changed.connect(self.inference.mark_stale)

    def _engine_options(self) -> dict:
        return self.settings.engine_options()

    # -- profile -------------------------------------------------------------------------------
    @property
    def profile(self) -> str | None:
        return self._profile

    def set_profile(self, name: str) -> None:
        if name == self._profile:
            return
        self._profile = name
        self.settings.last_profile = name or ""
        try:
            self.settings.save()
        except (OSError, ValueError):
            log.warning("could not save settings", exc_info=True)
        self.profile_changed.emit(name)

    def undo_stack(self) -> QUndoStack:
        return self._undo

    # -- errors --------------------------------------------------------------------------------
    def show_error(self, parent: QWidget | None, title: str, exc: BaseException) -> QMessageBox | None:
        cause, advice = explain(exc)
        text = f"{cause}\n\nWhat to do: {advice}"
        log.info("error shown: %s: %s", title, cause)
        self.error_shown.emit(title, text)
        if type(exc).__name__ == "Cancelled":
            self.status_message.emit("Stopped.")
            return None
        if parent is not None and not shiboken6.isValid(parent):
            parent = None
        box = QMessageBox(QMessageBox.Warning, title, "", QMessageBox.Ok, parent)
        box.setTextFormat(Qt.PlainText)
        box.setText(cause)
        box.setInformativeText(f"What to do: {advice}")
        box.setAttribute(Qt.WA_DeleteOnClose, True)
        # Non-blocking: background work keeps running while the dialog is up.
        self._open_boxes.append(box)
        box.finished.connect(lambda _r, b=box: self._open_boxes.remove(b) if b in self._open_boxes else None)
        box.open()
        return box

    def open_error_boxes(self) -> list[QMessageBox]:
        return [b for b in self._open_boxes if shiboken6.isValid(b)]
