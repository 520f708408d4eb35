"""The Chat view's side list of conversations: search, new (Ctrl+N), rename, delete (undoable).

The list shows the current profile's conversations, newest first, read with a BankQuery; every
change is a BankWrite, and a delete is a command on the app's undo stack (undo puts the
conversation back with its ids). Deleting a conversation never deletes the ratings it produced.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut, QUndoCommand
from PySide6.QtWidgets import (QHBoxLayout, QInputDialog, QLineEdit, QListWidget, QListWidgetItem,
                               QPushButton, QVBoxLayout, QWidget)

from cm_desktop.ui.ops import BankQuery, BankWrite
from cm_desktop.ui.plain import one_line

# Conversation writes announce bank_changed for no profile: they change no ratings, so neither
# the engine nor the Bank view needs to reload.
NO_RATINGS = ""


class DeleteConversationCommand(QUndoCommand):
    def __init__(self, view: "ConversationList", conversation_id: int, title: str):
        super().__init__(f"Delete conversation “{one_line(title or 'untitled', 40)}”")
        self.view, self.conversation_id = view, conversation_id
        self.removed = None       # the Conversation, set on the write thread

    def _write(self, fn, label: str) -> None:
        BankWrite(self.view, fn, profile=NO_RATINGS).labelled(label) \
            .success(lambda _r: self.view.refresh()).run()

    def redo(self) -> None:
        def delete(job):
            self.removed = job.bank.delete_conversation(self.conversation_id)
            return self.removed

        self._write(delete, "Deleting the conversation")
        self.view.deleted.emit(self.conversation_id)

    def undo(self) -> None:
        def restore(job):
            if self.removed is not None:
                job.bank.restore_conversation(self.removed)
            return self.removed

        self._write(restore, "Restoring the conversation")


class ConversationList(QWidget):
    """Emits `opened(id)` when the user picks a conversation, `new_requested` for a new one and
    `deleted(id)` when one is deleted."""

    opened = Signal(int)
    new_requested = Signal()
    deleted = Signal(int)
    refreshed = Signal()          # after the list was read again

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.current_id: int | None = None
        self.summaries: list = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 8, 0)
        self.new_button = QPushButton("New conversation")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.new_button.clicked.connect(self.new_requested.emit)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search conversations…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda _t: self.refresh())
        self.list = QListWidget()
        self.list.setObjectName("conversationList")
        self.list.setWordWrap(True)
        self.list.itemActivated.connect(self._activated)
        self.list.itemClicked.connect(self._activated)
        buttons = QHBoxLayout()
        self.rename_button = QPushButton("Rename…")
        self.rename_button.clicked.connect(self.rename_current)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Delete this conversation (Ctrl+Z undoes); its ratings stay")
        self.delete_button.clicked.connect(self.delete_current)
        buttons.addWidget(self.rename_button)
        buttons.addWidget(self.delete_button)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        QShortcut(QKeySequence.Delete, self.list, self.delete_current,
                  context=Qt.WidgetShortcut)
        self.setMinimumWidth(180)
        self.setMaximumWidth(280)

    # ---- reading ------------------------------------------------------------------------------
    def refresh(self) -> None:
        profile = self.ctx.profile
        if not profile:
            return
        search = self.search.text().strip()[:200] or None

        def loaded(summaries):
            if profile != self.ctx.profile:
                return
            self.summaries = summaries
            self.list.clear()
            for s in summaries:
                item = QListWidgetItem(one_line(s.title or "New conversation", 60))
                item.setData(Qt.UserRole, s.id)
                item.setToolTip(f"{s.messages} messages · {s.updated[:16].replace('T', ' ')} UTC")
                self.list.addItem(item)
                if s.id == self.current_id:
                    item.setSelected(True)
                    self.list.setCurrentItem(item)
            self.refreshed.emit()

        (BankQuery(self, lambda job: job.bank.conversations(profile, search=search))
         .supersedes((id(self), "conversations")).labelled("Reading the conversations")
         .success(loaded).run())

    def mark_current(self, conversation_id: int | None) -> None:
        self.current_id = conversation_id
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(Qt.UserRole) == conversation_id:
                self.list.setCurrentItem(item)
                return
        self.list.clearSelection()

    def _activated(self, item: QListWidgetItem) -> None:
        cid = item.data(Qt.UserRole)
        if cid != self.current_id:
            self.opened.emit(cid)

    def _title_of(self, conversation_id: int) -> str:
        return next((s.title for s in self.summaries if s.id == conversation_id), "")

    # ---- changing ------------------------------------------------------------------------------
    def rename_current(self, title: str | None = None) -> None:
        cid = self.current_id
        if cid is None:
            return
        if not isinstance(title, str):
            title, ok = QInputDialog.getText(self, "Rename conversation", "Title:",
                                             text=self._title_of(cid))
            if not ok:
                return
        BankWrite(self, lambda job: job.bank.rename_conversation(cid, title),
                  profile=NO_RATINGS).labelled("Renaming the conversation") \
            .success(lambda _c: self.refresh()).run()

    def delete_current(self) -> None:
        cid = self.current_id
        if cid is None:
            return
        self.ctx.undo_stack().push(DeleteConversationCommand(self, cid, self._title_of(cid)))
