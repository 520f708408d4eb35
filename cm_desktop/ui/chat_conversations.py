"""The Chat view's conversations: open, show, start, export; the list beside the chat drives them.

ChatView takes these methods from ConversationsMixin so that chat_view.py keeps the turn itself
(send, decide, stream, save, rate) and this module the conversation around it.
"""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QFrame, QVBoxLayout

from cm_desktop.ui.chat_widgets import ReplyWidget
from cm_desktop.ui.ops import BankQuery
from cm_desktop.ui.plain import plain_label, set_plain


class ConversationRef:
    """The conversation new turns go to. Its id is set on the write thread by the first write
    of a new conversation; later writes, queued behind it, read it there."""

    def __init__(self, profile: str, conversation_id: int | None = None):
        self.profile, self.id = profile, conversation_id

    def ensure(self, bank) -> int:
        if self.id is None:
            self.id = bank.create_conversation(self.profile).id
        return self.id


class ConversationsMixin:
    """Conversation handling of ChatView (uses its widgets, ctx and bookkeeping)."""

    # ---- conversations -------------------------------------------------------------------------
    def _clear(self) -> None:
        self.stop()
        while self.messages.count() > 1:
            item = self.messages.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.replies = []
        self.history = []

    def new_conversation(self) -> None:
        """An empty conversation; it is stored when its first message is sent."""
        self._clear()
        self.conversation = ConversationRef(self.ctx.profile or "")
        set_plain(self.title_label, "New conversation")
        self.conversation_list.mark_current(None)
        self.conversation_list.refresh()
        self.conversation_loaded.emit(None)
        self.input.setFocus()

    def open_latest(self) -> None:
        """The profile's most recently used conversation (after a restart), else a new one."""
        profile = self.ctx.profile
        if not profile:
            return

        def found(conv):
            if profile != self.ctx.profile or self.replies:
                return      # the user started chatting before the last conversation was read
            if conv is None:
                self.new_conversation()
            else:
                self._show_conversation(conv)

        def latest(job):
            summary = job.bank.latest_conversation(profile)
            return job.bank.conversation(summary.id) if summary else None

        (BankQuery(self, latest).supersedes((id(self), "open")).labelled("Opening the conversation")
         .success(found).run())

    def open_conversation(self, conversation_id: int) -> None:
        (BankQuery(self, lambda job: job.bank.conversation(conversation_id))
         .supersedes((id(self), "open")).labelled("Opening the conversation")
         .success(self._show_conversation).run())

    def _show_conversation(self, conv) -> None:
        from cm_desktop.cm.engine import Trace

        if conv.profile != self.ctx.profile:
            return
        self._clear()
        self.conversation = ConversationRef(conv.profile, conv.id)
        set_plain(self.title_label, conv.title or "New conversation")
        history: list[dict] = []
        for m in conv.messages:
            if m.role == "user":
                self._add_message(self._user_bubble(m.text))
                history.append({"role": "user", "content": m.text})
                continue
            query = history[-1]["content"] if history and history[-1]["role"] == "user" else ""
            reply = ReplyWidget(self, next(self._ids), query)
            reply.message_id = m.id
            reply.history = [dict(t) for t in history[:-1]]
            try:
                trace = Trace.from_dict(m.trace) if m.trace else None
            except (KeyError, TypeError, ValueError):
                trace = None          # a trace from another version: the reply still shows
            if trace is not None:
                reply.set_trace(trace)
                reply.regenerate_button.setEnabled(True)
            else:       # no decision stored with it: the meaning alone, if any
                set_plain(reply.header, f"→ {m.response}" if m.response else "")
            reply.rated = m.rating_id is not None
            if reply.rated:
                reply.up_button.setEnabled(False)
                reply.down_button.setEnabled(False)
            reply.copy_button.setEnabled(True)
            reply.append("personal", m.text)
            self._add_message(reply)
            self.replies.append(reply)
            if m.text.strip():
                history.append({"role": "assistant", "content": m.text, "meaning": m.response})
        self.history = history
        self.conversation_list.mark_current(conv.id)
        self.conversation_list.refresh()
        self.conversation_loaded.emit(conv)

    def _deleted(self, conversation_id: int) -> None:
        if self.conversation.id == conversation_id:
            self.new_conversation()

    def export_markdown(self, path: str | None = None) -> None:
        """Write the open conversation as Markdown (asks where when no path is given)."""
        cid = self.conversation.id
        if cid is None:
            self.ctx.status_message.emit("Nothing to export yet: send a message first.")
            return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export conversation", "conversation.md",
                                                  "Markdown (*.md)")
            if not path:
                return

        def write(job):
            from bank_store import conversation_markdown
            from bank_store.files import write_private_atomic

            write_private_atomic(path, conversation_markdown(job.bank.conversation(cid))
                                 .encode("utf-8"))
            return path

        (BankQuery(self, write).labelled("Exporting the conversation")
         .success(lambda p: self.ctx.status_message.emit(f"Saved the conversation to {p}")).run())

    @staticmethod
    def _user_bubble(text: str) -> QFrame:
        bubble = QFrame()
        bubble.setObjectName("bubbleUser")
        bl = QVBoxLayout(bubble)
        bl.setContentsMargins(12, 8, 12, 8)
        bl.addWidget(plain_label(text, selectable=True))
        return bubble
