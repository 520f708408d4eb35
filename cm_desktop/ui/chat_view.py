"""The Chat view: each reply is the personalized response (a member of R, chosen by CM) followed by
an answer the model writes for it, streamed token by token.

Per reply: a Why expander (the raw model response, the top of p(y'|x), the candidate set with
counts, the nearest rated instances, the rule that fired, passes and time), a raw/personalized
toggle, 👍 (rates y' → chosen) and 👎 (pick what you meant: the candidate set first, then the full
set, filterable), Regenerate and Copy. Enter sends, Shift+Enter adds a newline, Stop or Esc cancels.

Conversations are kept in the bank (chat_conversations.py): the side list opens, searches, renames and deletes them
(Ctrl+N starts a new one), the last one is open again after a restart, and a conversation can be
exported as Markdown. A reply is written from the chosen response, its guidance and the
conversation so far (cm.chat); a follow-up is decided alone and together with the previous
user turn, and the more confident decision kept.
"""

from __future__ import annotations

import itertools

import shiboken6
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QFrame, QHBoxLayout, QPushButton, QScrollArea, QVBoxLayout, QWidget

from cm_desktop.cm import chat
from cm_desktop.ui.chat_conversations import ConversationRef, ConversationsMixin
from cm_desktop.ui.chat_widgets import ChatInput, PickResponseDialog, ReplyWidget
from cm_desktop.ui.conversation_list import NO_RATINGS, ConversationList
from cm_desktop.ui.idle_tuning import tune_when_idle
from cm_desktop.ui.ops import BankQuery, BankWrite, ModelJob, Priority
from cm_desktop.ui.plain import one_line, plain_label
from cm_desktop.ui.rating_commands import AddRatingCommand


class ChatView(ConversationsMixin, QWidget):
    reply_finished = Signal(object)      # the ReplyWidget whose answer finished (or stopped)
    conversation_loaded = Signal(object)  # the Conversation shown (None: a new, empty one)
    busy_changed = Signal(bool)           # waiting for the model (the Rate view pauses prefetch)

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.replies: list[ReplyWidget] = []
        self._ids = itertools.count(1)
        self._ops: list = []                 # running ops of this view (Stop cancels them)
        self.pick_dialog: PickResponseDialog | None = None
        self.guidance_dialog = None
        self._responses: list[str] = []
        self.history: list[dict] = []        # the open conversation's turns, as chat messages
        self.conversation = ConversationRef(ctx.profile or "")
        self._build()
        ctx.profile_changed.connect(self._profile_changed)
        if ctx.profile:
            self._profile_changed(ctx.profile)

    def _profile_changed(self, profile: str) -> None:
        self._load_responses(profile)
        self.open_latest()

    def _load_responses(self, profile: str) -> None:
        def loaded(responses):
            if profile == self.ctx.profile:
                self._responses = responses

        if profile:
            (BankQuery(self, lambda job: list(job.bank.get_profile(profile).responses))
             .supersedes((id(self), "responses")).labelled("Reading the profile").success(loaded).run())

    def _build(self) -> None:
        root = QHBoxLayout(self)
        root.setContentsMargins(16, 12, 16, 12)
        self.conversation_list = ConversationList(self.ctx, self)
        self.conversation_list.opened.connect(self.open_conversation)
        self.conversation_list.new_requested.connect(self.new_conversation)
        self.conversation_list.deleted.connect(self._deleted)
        root.addWidget(self.conversation_list)
        outer = QVBoxLayout()
        root.addLayout(outer, 1)
        top = QHBoxLayout()
        self.title_label = plain_label("New conversation")
        self.title_label.setObjectName("conversationTitle")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save this conversation as a Markdown file")
        self.export_button.clicked.connect(lambda: self.export_markdown())
        top.addWidget(self.title_label, 1)
        top.addWidget(self.export_button)
        outer.addLayout(top)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # long text wraps
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
        QShortcut(QKeySequence.New, self, self.new_conversation,
                  context=Qt.WidgetWithChildrenShortcut)
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
        reply = ReplyWidget(self, next(self._ids), text)
        reply.history = list(self.history)
        self._add_message(self._user_bubble(text))
        self._add_message(reply)
        self.replies.append(reply)
        self.history.append({"role": "user", "content": text})
        ref = self.conversation
        if ref.profile != profile:
            ref = self.conversation = ConversationRef(profile)

        def save_user(job):
            return job.bank.add_message(ref.ensure(job.bank), "user", text)

        BankWrite(self, save_user, profile=NO_RATINGS).labelled("Saving the message") \
            .success(lambda _m: self._saved(ref)).run()
        self._decide(reply, profile)
        return reply

    def _saved(self, ref: ConversationRef) -> None:
        if ref is self.conversation:
            self.conversation_list.mark_current(ref.id)
        self.conversation_list.refresh()

    def _decide(self, reply: ReplyWidget, profile: str, chosen: str | None = None) -> None:
        """CM's decision for the reply's message (or, with `chosen`, that meaning), then the reply."""
        history = reply.history
        query = reply.query
        decided_on = reply.trace.query if reply.trace is not None else query

        def decide(job):
            engine = job.session.engine_for(profile)
            if chosen is None:
                trace = chat.decide_turn(engine, query, history, cancel=job.cancel)
            else:
                # a meaning the user picked: one decision, on the text decided on before, so
                # the Why panel still shows what the model and the bank said of it
                trace = engine.decide(decided_on, cancel=job.cancel)
                trace.chosen, trace.rule = chosen, "picked by you"
            return trace, job.bank.guidance_for(profile, trace.chosen), engine.tuning.due

        def decided(result):
            trace, guidance, tuning_due = result
            if shiboken6.isValid(reply):      # else its conversation was closed
                reply.set_trace(trace)
                reply.guidance = guidance
                reply.reset_answers()
                self._stream(reply, "personal", trace.chosen)
                # the raw answer may have been asked for while the meaning was being chosen
                self.show_answer(reply, reply.showing)
            if tuning_due:      # the decision did not wait for it: tune once the reply is written
                tune_when_idle(self, self.ctx, profile)

        def failed(exc):
            if not shiboken6.isValid(reply):      # its conversation was closed
                return
            from cm_desktop.ui.errors import explain
            cause, advice = explain(exc)
            reply.set_failed(f"{cause}\n{advice}")
            self.reply_finished.emit(reply)

        op = (ModelJob(self, decide).with_priority(Priority.INTERACTIVE)
              .with_progress("Choosing the response", cancellable=True)
              .success(decided).failure(failed).run())

        def stopped():
            if op.was_cancelled and shiboken6.isValid(reply):
                reply.set_failed("Stopped before a response was chosen.")
                self.reply_finished.emit(reply)

        op.finished.connect(stopped)
        self._track(op)

    def _stream(self, reply: ReplyWidget, which: str, response: str) -> None:
        settings = self.ctx.settings
        max_tokens = int(settings.max_tokens)
        guidance = reply.guidance if which == "personal" else ""
        query, history = reply.query, list(reply.history)
        profile = self.ctx.profile
        stream_id = reply.new_stream(which)

        def current() -> bool:   # the reply exists and this is its latest stream of `which`
            return shiboken6.isValid(reply) and reply.stream_ids[which] == stream_id

        def stream(job):
            # A generator: the prompt first (kept on the reply), then each piece of the reply;
            # each reaches `append_streamed` on the GUI thread as it comes.
            backend = job.session.backend
            notes = job.bank.guidance(profile) if profile else None   # earlier replies' notes
            messages = chat.reply_messages(backend, query, response, guidance, history, max_tokens,
                                           guidance_of=notes)
            yield messages
            yield from chat.clean_reply(backend.stream_chat(
                messages, max_tokens=max_tokens, temperature=float(settings.temperature),
                cancel=job.cancel))

        def finished(_result) -> None:
            if not current():      # its conversation was closed, or the answer rewritten
                return
            reply.streaming.discard(which)
            if which == "personal":
                self._save_reply(reply)
            self.reply_finished.emit(reply)

        def failed(exc):
            if not current():      # its conversation was closed, or the answer rewritten
                return
            reply.streaming.discard(which)
            from cm_desktop.ui.errors import explain
            reply.append(which, f"\n[{explain(exc)[0]}]")
            self.reply_finished.emit(reply)

        op = (ModelJob(self, stream).with_priority(Priority.INTERACTIVE).labelled("Writing the answer")
              .on_yield(lambda piece: self.append_streamed(reply, which, piece, stream_id))
              .success(finished).failure(failed).run())

        def stopped():
            if op.was_cancelled and current():
                reply.streaming.discard(which)
                if which == "personal":
                    self._save_reply(reply)       # kept as far as it got
                self.reply_finished.emit(reply)

        op.finished.connect(stopped)
        self._track(op)

    def append_streamed(self, reply: ReplyWidget, which: str, piece,
                        stream_id: int | None = None) -> None:
        """Where each streamed value of an answer arrives (GUI thread): first the prompt it is
        written from (a list of messages), then its pieces; keeps the view at the bottom if it
        was there. Pieces of a stream the answer no longer shows (`stream_id` is not its latest:
        the reply was rewritten meanwhile) are dropped."""
        if not shiboken6.isValid(reply):
            return
        if stream_id is not None and stream_id != reply.stream_ids[which]:
            return
        if isinstance(piece, list):
            reply.prompts[which] = piece
            return
        at_bottom = self._at_bottom()
        reply.append(which, piece)
        if at_bottom:
            QTimer.singleShot(0, self._scroll_to_bottom)

    def _save_reply(self, reply: ReplyWidget) -> None:
        trace, text, ref = reply.trace, reply.answers["personal"], self.conversation
        if trace is None:
            return
        message_id = reply.message_id
        if message_id is None and reply in self.replies and text.strip():
            self.history.append({"role": "assistant", "content": text, "meaning": trace.chosen})

        def save(job):
            if message_id is not None:
                return job.bank.replace_reply(message_id, text, response=trace.chosen,
                                              trace=trace.to_dict())
            return job.bank.add_message(ref.ensure(job.bank), "assistant", text,
                                        response=trace.chosen, trace=trace.to_dict())

        def saved(message):
            if not shiboken6.isValid(reply):      # its conversation was closed
                return
            reply.message_id = message.id
            reply.regenerate_button.setEnabled(True)
            self._saved(ref)

        BankWrite(self, save, profile=NO_RATINGS).labelled("Saving the reply").success(saved).run()

    def regenerate(self, reply: ReplyWidget, chosen: str | None = None) -> None:
        """Write the reply again (with `chosen`: for that meaning); it replaces the stored one."""
        profile = self.ctx.profile
        if not profile or reply.trace is None:
            return
        if reply is self.replies[-1] and self.history and self.history[-1]["role"] == "assistant":
            self.history.pop()        # the last reply is being rewritten
        reply.regenerate_button.setEnabled(False)
        if chosen is None:
            self._stream(reply, "personal", reply.trace.chosen)
        else:
            # until the meaning is chosen again, the old trace's answers are not shown
            reply.reset_answers()
            self._decide(reply, profile, chosen)
        # the rewrite is what the reply shows now; the raw toggle may switch again any time
        reply.raw_button.blockSignals(True)
        reply.raw_button.setChecked(False)
        reply.raw_button.blockSignals(False)
        reply.show("personal")

    def _track(self, op) -> None:
        self._ops.append(op)
        self.stop_button.setEnabled(True)
        if len(self._ops) == 1:
            self.busy_changed.emit(True)

        def done():
            if op in self._ops:
                self._ops.remove(op)
                if not self._ops:
                    self.busy_changed.emit(False)
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
        # the raw answer is written once, on first view (the personal one when they are equal)
        if (which == "raw" and trace is not None and not reply.raw_is_personal()
                and not reply.answers["raw"] and "raw" not in reply.streaming):
            self._stream(reply, "raw", trace.model_response)

    def _rate(self, reply: ReplyWidget, user_response: str) -> None:
        profile = self.ctx.profile
        trace = reply.trace
        if trace is None or not profile:
            return
        reply.rated = True
        reply.up_button.setEnabled(False)
        reply.down_button.setEnabled(False)

        def added(rating):
            if reply.message_id is not None and rating is not None:
                BankWrite(self, lambda job: job.bank.set_message_rating(reply.message_id, rating.id),
                          profile=NO_RATINGS).labelled("Linking the rating").run()

        def undone(_r):
            reply.rated = False
            reply.up_button.setEnabled(True)
            reply.down_button.setEnabled(True)
            if reply.message_id is not None:
                BankWrite(self, lambda job: job.bank.set_message_rating(reply.message_id, None),
                          profile=NO_RATINGS).labelled("Unlinking the rating").run()

        # the instance is what CM decided on (a follow-up together with its previous turn)
        self.ctx.undo_stack().push(AddRatingCommand(
            self.ctx, profile, trace.query, trace.model_response, user_response, source="rated",
            strategy=trace.strategy, fingerprint=self.ctx.inference.fingerprint, on_added=added,
            on_undone=undone, parent_widget=self, model_distribution=trace.model_p))
        self.ctx.status_message.emit(f"Remembered: “{one_line(reply.query, 40)}” → {user_response}")

    def edit_guidance(self, reply: ReplyWidget):
        """The guidance of the response the reply was written for, in a dialog."""
        from cm_desktop.ui.guidance_editor import GuidanceDialog

        if reply.trace is None:
            return None
        dialog = GuidanceDialog(self.ctx, reply.trace.chosen, self)
        dialog.setAttribute(Qt.WA_DeleteOnClose, True)
        dialog.editor.saved.connect(lambda response, _t: self.ctx.status_message.emit(
            f"Saved what you mean by “{response}”; Regenerate writes the reply with it."))
        self.guidance_dialog = dialog
        dialog.open()
        return dialog

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
        dialog.accepted.connect(lambda: dialog.chosen and self._picked(reply, dialog.chosen))
        self.pick_dialog = dialog
        dialog.open()
        return dialog

    def _picked(self, reply: ReplyWidget, chosen: str) -> None:
        self._rate(reply, chosen)
        if chosen != reply.trace.chosen:
            self.ctx.status_message.emit(f"Rewriting the reply for “{chosen}”…")
            self.regenerate(reply, chosen)
