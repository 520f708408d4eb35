"""The Chat view: each reply is the personalized response (a member of R, chosen by CM) followed by
an answer the model writes for it, streamed token by token.

Per reply: a Why expander (the raw model response, the top of p(y'|x), the candidate set with
counts, the nearest rated instances, the rule that fired, passes and time), a raw/personalized
toggle, 👍 (rates y' → chosen) and 👎 (pick what you meant: the candidate set first, then the full
set, filterable). Enter sends, Shift+Enter adds a newline, Stop or Esc cancels.
"""

from __future__ import annotations

import itertools

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from cm_desktop.cm.choices import filter_responses
from cm_desktop.cm.strategies import chat_messages
from cm_desktop.ui.ops import BankQuery, ModelJob
from cm_desktop.ui.plain import one_line, plain_label, set_plain
from cm_desktop.ui.rating_commands import AddRatingCommand


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

    def __init__(self, view: "ChatView", reply_id: int, query: str):
        super().__init__()
        self.setObjectName("bubbleBot")
        self.view, self.reply_id, self.query = view, reply_id, query
        self.trace = None
        self.answers = {"personal": "", "raw": ""}
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
        self.up_button = QToolButton(text="👍")
        self.up_button.setToolTip("Right: remember that this is what I meant")
        self.down_button = QToolButton(text="👎")
        self.down_button.setToolTip("Wrong: pick what I meant")
        for b in (self.why_button, self.raw_button, self.up_button, self.down_button):
            b.setEnabled(False)
            bar.addWidget(b)
        bar.addStretch(1)
        layout.addLayout(bar)
        self.why_panel = plain_label("", selectable=True)
        self.why_panel.setObjectName("whyPanel")
        self.why_panel.setVisible(False)
        layout.addWidget(self.why_panel)
        self.why_button.toggled.connect(self._toggle_why)
        self.raw_button.toggled.connect(lambda on: view.show_answer(self, "raw" if on else "personal"))
        self.up_button.clicked.connect(lambda: view.thumbs_up(self))
        self.down_button.clicked.connect(lambda: view.thumbs_down(self))

    def set_trace(self, trace) -> None:
        self.trace = trace
        set_plain(self.header, f"→ {trace.chosen}")
        set_plain(self.why_panel, trace.explain())
        for b in (self.why_button, self.raw_button, self.up_button, self.down_button):
            b.setEnabled(True)
        if trace.chosen == trace.model_response:
            self.raw_button.setToolTip("The bank did not change the model's answer here.")

    def set_failed(self, message: str) -> None:
        set_plain(self.header, "No reply")
        set_plain(self.body, message)

    def _toggle_why(self, on: bool) -> None:
        self.why_button.setText("Why ▾" if on else "Why ▸")
        self.why_panel.setVisible(on)

    def append(self, which: str, text: str) -> None:
        self.answers[which] += text
        if which == self.showing:
            set_plain(self.body, self.answers[which])

    def show(self, which: str) -> None:  # noqa: A003 - the reply shows one of its two answers
        self.showing = which
        if self.trace is not None:
            response = self.trace.chosen if which == "personal" else self.trace.model_response
            prefix = "→ " if which == "personal" else "Raw model → "
            set_plain(self.header, prefix + response)
        set_plain(self.body, self.answers[which])


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


class ChatView(QWidget):
    reply_finished = Signal(object)      # the ReplyWidget whose answer finished (or stopped)

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.replies: list[ReplyWidget] = []
        self._ids = itertools.count(1)
        self._ops: list = []                 # running ops of this view (Stop cancels them)
        self.pick_dialog: PickResponseDialog | None = None
        self._responses: list[str] = []
        self._build()
        ctx.profile_changed.connect(self._load_responses)
        if ctx.profile:
            self._load_responses(ctx.profile)

    def _load_responses(self, profile: str) -> None:
        def loaded(responses):
            if profile == self.ctx.profile:
                self._responses = responses

        if profile:
            (BankQuery(self, lambda job: list(job.bank.get_profile(profile).responses))
             .supersedes((id(self), "responses")).labelled("Reading the profile").success(loaded).run())

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(16, 12, 16, 12)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.NoFrame)
        holder = QWidget()
        holder.setObjectName("chatArea")
        self.messages = QVBoxLayout(holder)
        self.messages.setSpacing(10)
        self.messages.addStretch(1)
        self.scroll.setWidget(holder)
        outer.addWidget(self.scroll, 1)
        bottom = QHBoxLayout()
        self.input = ChatInput()
        self.input.setPlaceholderText("Write a message…  (Enter sends, Shift+Enter for a new line)")
        self.input.setFixedHeight(64)
        self.input.send_requested.connect(self.send)
        self.input.stop_requested.connect(self.stop)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("primary")
        self.send_button.clicked.connect(self.send)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        bottom.addWidget(self.input, 1)
        bottom.addWidget(self.send_button)
        bottom.addWidget(self.stop_button)
        outer.addLayout(bottom)
        QShortcut(QKeySequence(Qt.Key_Escape), self, self.stop, context=Qt.WidgetWithChildrenShortcut)
        self.setFocusProxy(self.input)

    # ---- sending -----------------------------------------------------------------------------
    def send(self, text: str | None = None) -> ReplyWidget | None:
        text = (text if isinstance(text, str) else self.input.toPlainText()).strip()
        profile = self.ctx.profile
        if not text:
            return None
        if not profile:
            self.ctx.status_message.emit("Choose a profile first.")
            return None
        self.input.clear()
        bubble = QFrame()
        bubble.setObjectName("bubbleUser")
        bl = QVBoxLayout(bubble)
        bl.setContentsMargins(12, 8, 12, 8)
        bl.addWidget(plain_label(text, selectable=True))
        reply = ReplyWidget(self, next(self._ids), text)
        self._add_message(bubble)
        self._add_message(reply)
        self.replies.append(reply)

        def decide(job):
            return job.session.engine_for(profile).decide(text, cancel=job.cancel)

        def decided(trace):
            reply.set_trace(trace)
            self._stream(reply, "personal", trace.chosen)

        def failed(exc):
            from cm_desktop.ui.errors import explain
            cause, advice = explain(exc)
            reply.set_failed(f"{cause}\n{advice}")
            self.reply_finished.emit(reply)

        op = (ModelJob(self, decide)
              .with_progress("Choosing the response", cancellable=True)
              .success(decided).failure(failed).run())

        def stopped():
            if op.was_cancelled:
                reply.set_failed("Stopped before a response was chosen.")
                self.reply_finished.emit(reply)

        op.finished.connect(stopped)
        self._track(op)
        return reply

    def _stream(self, reply: ReplyWidget, which: str, response: str) -> None:
        settings = self.ctx.settings
        messages = chat_messages(reply.query, response)

        def stream(job):
            # A generator: each piece reaches `append_streamed` on the GUI thread as it comes.
            yield from job.session.backend.stream_chat(messages, max_tokens=int(settings.max_tokens),
                                                       temperature=float(settings.temperature),
                                                       cancel=job.cancel)

        def failed(exc):
            from cm_desktop.ui.errors import explain
            reply.append(which, f"\n[{explain(exc)[0]}]")
            self.reply_finished.emit(reply)

        op = (ModelJob(self, stream).labelled("Writing the answer")
              .on_yield(lambda piece: self.append_streamed(reply, which, piece))
              .success(lambda _t: self.reply_finished.emit(reply)).failure(failed).run())
        op.finished.connect(lambda: self.reply_finished.emit(reply) if op.was_cancelled else None)
        self._track(op)

    def append_streamed(self, reply: ReplyWidget, which: str, piece: str) -> None:
        """Where each streamed piece of an answer arrives (GUI thread); keeps the view at the
        bottom if it was there."""
        at_bottom = self._at_bottom()
        reply.append(which, piece)
        if at_bottom:
            QTimer.singleShot(0, self._scroll_to_bottom)

    def _track(self, op) -> None:
        self._ops.append(op)
        self.stop_button.setEnabled(True)

        def done():
            if op in self._ops:
                self._ops.remove(op)
            self.stop_button.setEnabled(bool(self._ops))

        op.finished.connect(done)

    def stop(self) -> None:
        for op in list(self._ops):
            op.cancel()
        if self._ops:
            self.ctx.status_message.emit("Stopped.")

    def is_busy(self) -> bool:
        return bool(self._ops)

    def _add_message(self, widget: QWidget) -> None:
        self.messages.insertWidget(self.messages.count() - 1, widget)
        QTimer.singleShot(0, self._scroll_to_bottom)

    def _at_bottom(self) -> bool:
        bar = self.scroll.verticalScrollBar()
        return bar.value() >= bar.maximum() - 24

    def _scroll_to_bottom(self) -> None:
        bar = self.scroll.verticalScrollBar()
        bar.setValue(bar.maximum())

    # ---- per-reply actions -------------------------------------------------------------------
    def show_answer(self, reply: ReplyWidget, which: str) -> None:
        reply.show(which)
        trace = reply.trace
        if which == "raw" and trace is not None and not reply.answers["raw"]:
            if trace.model_response == trace.chosen:
                reply.answers["raw"] = reply.answers["personal"]
                reply.show("raw")
            else:
                self._stream(reply, "raw", trace.model_response)

    def _rate(self, reply: ReplyWidget, user_response: str) -> None:
        profile = self.ctx.profile
        trace = reply.trace
        if trace is None or not profile:
            return
        reply.rated = True
        reply.up_button.setEnabled(False)
        reply.down_button.setEnabled(False)

        def undone(_r):
            reply.rated = False
            reply.up_button.setEnabled(True)
            reply.down_button.setEnabled(True)

        self.ctx.undo_stack().push(AddRatingCommand(
            self.ctx, profile, reply.query, trace.model_response, user_response, source="rated",
            strategy=trace.strategy, fingerprint=self.ctx.inference.fingerprint, on_undone=undone,
            parent_widget=self))
        self.ctx.status_message.emit(f"Remembered: “{one_line(reply.query, 40)}” → {user_response}")

    def thumbs_up(self, reply: ReplyWidget) -> None:
        if reply.trace is not None:
            self._rate(reply, reply.trace.chosen)

    def thumbs_down(self, reply: ReplyWidget) -> PickResponseDialog | None:
        trace = reply.trace
        if trace is None:
            return None
        responses = list(self._responses)
        dialog = PickResponseDialog(trace.candidates, trace.model_top, responses, self)
        dialog.setAttribute(Qt.WA_DeleteOnClose, True)
        dialog.accepted.connect(lambda: dialog.chosen and self._rate(reply, dialog.chosen))
        self.pick_dialog = dialog
        dialog.open()
        return dialog
