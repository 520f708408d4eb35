"""The Rate view: go through a queue of queries, accept or correct the model's proposal.

Keys (wherever focus is in the view; typing goes to the filter box): Enter accepts the proposal
(or, while filtering, picks the highlighted response); 1–9 pick a top candidate; typing filters
the whole response set, arrows move in it; Backspace on an empty filter skips; Esc clears the
filter; Ctrl+Z is the app's Undo (the rating), never the filter box's text undo.

Proposals are computed on the inference thread and the next few queries are prefetched, so the next
one is normally ready at once. With coverage-driven order the next query is the prefetched one the
bank knows least about (`CMEngine.coverage_need`). A rated query is never offered again and a
skipped one only when nothing else is left, across restarts too (`rate_queue.SeenQueries`). When
the user's learning curve has flattened, a hint offers the coverage order (`curve_hint`).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from bank_store.records import normalise_response
from cm_desktop.cm.choices import filter_responses, top_choices
from cm_desktop.cm.coverage import QUEUE_WINDOW   # proposals computed ahead of the current one
from cm_desktop.ui.curve_hint import CurveHint
from cm_desktop.ui.ops import BankQuery, BankWrite, FileTask, ModelJob, Priority
from cm_desktop.ui.plain import one_line, plain_label, set_plain
from cm_desktop.ui.rate_queue import KeyRouter, QueueItem, SeenQueries
from cm_desktop.ui.rating_commands import AddRatingCommand
from cm_desktop.datasets import Query, read_queries


class RateView(QWidget):
    rated = Signal(object)        # the Rating written (after the bank write)

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.queue: list[QueueItem] = []
        self.paused = False               # prefetch paused (the Chat view is busy)
        self.seen = SeenQueries()         # the profile's rated and skipped queries
        self.current: QueueItem | None = None
        self.n_rated = 0
        self.n_agreed = 0
        self.n_skipped = 0
        self._responses: list[str] = []
        self._strategy = ctx.settings.strategy
        self._build()
        ctx.profile_changed.connect(self._on_profile_changed)
        ctx.inference.backend_loaded.connect(self._backend_loaded)
        if ctx.profile:
            self._on_profile_changed(ctx.profile)

    # ---- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(16, 12, 16, 12)
        outer.setSpacing(10)

        source = QHBoxLayout()
        self.open_button = QPushButton("Open dataset…")
        self.open_button.clicked.connect(self.choose_dataset)
        self.add_edit = QLineEdit()
        self.add_edit.setPlaceholderText("Type a query to rate and press Enter…")
        self.add_edit.returnPressed.connect(self._add_typed)
        self.coverage_box = QCheckBox("Coverage-driven order")
        self.coverage_box.setToolTip("Ask first about the queries the bank knows least about.")
        self.coverage_box.setChecked(bool(self.ctx.settings.coverage_order))
        self.coverage_box.toggled.connect(self._coverage_toggled)
        source.addWidget(self.open_button)
        source.addWidget(self.add_edit, 1)
        source.addWidget(self.coverage_box)
        outer.addLayout(source)
        self.curve_hint = CurveHint(self.ctx, self.coverage_box.isChecked, self)
        self.curve_hint.use_coverage.connect(lambda: self.coverage_box.setChecked(True))
        outer.addWidget(self.curve_hint)

        card = QFrame()
        card.setObjectName("bubbleBot")
        card_layout = QVBoxLayout(card)
        card_layout.setContentsMargins(14, 10, 14, 12)
        self.source_label = plain_label("", wrap=False)
        self.source_label.setObjectName("muted")
        self.query_label = plain_label("No queries yet: open a dataset or type one above.", selectable=True)
        self.query_label.setObjectName("queryText")
        self.query_label.setIndent(0)
        self.proposal_label = plain_label("")
        self.proposal_label.setObjectName("proposalText")
        card_layout.addWidget(self.source_label)
        card_layout.addWidget(self.query_label)
        card_layout.addWidget(self.proposal_label)
        outer.addWidget(card)

        middle = QGridLayout()
        middle.setHorizontalSpacing(14)
        middle.addWidget(plain_label("Top candidates (press 1–9)"), 0, 0)
        middle.addWidget(plain_label("All responses (type to filter, ↑↓ and Enter to pick)"), 0, 1)
        self.top_list = QListWidget()
        self.top_list.setFocusPolicy(Qt.NoFocus)
        self.top_list.itemClicked.connect(lambda item: self.pick_top(self.top_list.row(item) + 1))
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Type to search the response set…")
        self.filter_edit.textChanged.connect(self._refilter)
        self._key_router = KeyRouter(self)
        self.filter_edit.installEventFilter(self._key_router)
        self.all_list = QListWidget()
        self.all_list.setFocusPolicy(Qt.NoFocus)
        self.all_list.itemDoubleClicked.connect(lambda item: self.rate(item.text()))
        right = QVBoxLayout()
        right.addWidget(self.filter_edit)
        right.addWidget(self.all_list, 1)
        middle.addWidget(self.top_list, 1, 0)
        middle.addLayout(right, 1, 1)
        middle.setColumnStretch(0, 1)
        middle.setColumnStretch(1, 1)
        outer.addLayout(middle, 1)

        buttons = QHBoxLayout()
        self.accept_button = QPushButton("Accept  (Enter)")
        self.accept_button.setObjectName("primary")
        self.accept_button.clicked.connect(self.accept)
        self.skip_button = QPushButton("Skip  (Backspace)")
        self.skip_button.clicked.connect(self.skip)
        self.undo_button = QPushButton("Undo  (Ctrl+Z)")
        self.undo_button.clicked.connect(self.ctx.undo_stack().undo)
        self.undo_button.setEnabled(False)
        self.ctx.undo_stack().canUndoChanged.connect(self.undo_button.setEnabled)
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.skip_button)
        buttons.addStretch(1)
        buttons.addWidget(self.undo_button)
        outer.addLayout(buttons)

        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.counts_label = plain_label("", wrap=False)
        self.counts_label.setObjectName("muted")
        outer.addWidget(self.progress)
        outer.addWidget(self.counts_label)
        self.setFocusProxy(self.filter_edit)
        # the view's keys work wherever focus is inside it (after clicking a button, too); a
        # box the user types into (the add-a-query box) keeps its own keys
        for child in self.findChildren(QWidget):
            if child is not self.filter_edit and child.focusPolicy() != Qt.NoFocus \
                    and not isinstance(child, QLineEdit):
                child.installEventFilter(self._key_router)
        self._update_counts()

    # ---- profile and queue -------------------------------------------------------------------
    def _on_profile_changed(self, profile: str) -> None:
        self._responses = []
        self.seen.clear()
        if profile:
            (BankQuery(self, lambda job: list(job.bank.get_profile(profile).responses))
             .supersedes((id(self), "responses")).labelled("Reading the profile")
             .success(self._set_responses).run())
            (BankQuery(self, lambda job: ([r.instance for r in job.bank.ratings(profile)],
                                          job.bank.skipped_queries(profile)))
             .supersedes((id(self), "seen")).labelled("Reading the ratings")
             .success(lambda seen: self._set_seen(profile, *seen)).run())
        self._restart_proposals()

    def _set_seen(self, profile: str, rated: list[str], skipped: list[str]) -> None:
        """What the profile rated is never offered again, what it skipped waits at the end (after
        a restart the queue goes on where it was)."""
        if profile != self.ctx.profile:
            return
        for text in rated:
            self.seen.set_rated(text, True)
        self.seen.add_skipped(skipped)
        self._reorder()
        self._update_counts()

    def _reorder(self) -> None:
        """Apply `seen` to the queue; the query on screen gives way to any not skipped."""
        self.queue = self.seen.order(self.queue)
        if self.current is not None and self.seen.gives_way(self.current, self.queue):
            self.queue = self.seen.order(self.queue + [self.current])
            self._advance()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().showEvent(event)
        self.curve_hint.refresh_if_stale()

    def settings_applied(self) -> None:
        """A new prompting strategy changes the proposals; other settings do not."""
        if self.ctx.settings.strategy != self._strategy:
            self._strategy = self.ctx.settings.strategy
            self._restart_proposals()
        self.coverage_box.setChecked(bool(self.ctx.settings.coverage_order))

    def _set_responses(self, responses: list[str]) -> None:
        self._responses = responses
        self._refilter()

    def _restart_proposals(self) -> None:
        """Proposals belong to one profile and one model: drop them and ask again."""
        for item in ([self.current] if self.current else []) + self.queue:
            item.forget_proposal()
        self._show_current()
        self._prefetch()

    def _backend_loaded(self, _kind: str, fingerprint: str) -> None:
        """Re-ask only what another model proposed or what failed; queued requests already run
        after the load (the inference thread is FIFO)."""
        for item in ([self.current] if self.current else []) + self.queue:
            if item.error is not None or (item.trace is not None and item.fingerprint != fingerprint):
                item.forget_proposal()
        self._show_current()
        self._prefetch()

    def load_queries(self, queries: list[Query], source: str = "") -> None:
        self.queue.extend(QueueItem(q) for q in queries if not self.seen.is_rated(q.text))
        self._reorder()
        if source:
            set_plain(self.source_label, f"From {source}")
        if self.current is None:
            self._advance()
        else:
            self._prefetch()
        self._update_counts()

    def open_dataset(self, path: str) -> None:
        def loaded(queries):
            self.ctx.settings.last_dataset = str(path)
            self.load_queries(queries, source=str(path).rsplit("/", 1)[-1])

        FileTask(self, lambda job: read_queries(path)).with_progress("Opening the dataset").success(loaded).run()

    def choose_dataset(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a dataset of queries", self.ctx.settings.last_dataset,
                                              "Queries (*.jsonl *.json *.txt);;All files (*)")
        if path:
            self.open_dataset(path)

    def _add_typed(self) -> None:
        text = self.add_edit.text().strip()
        if not text:
            return
        self.add_edit.clear()
        self.queue.insert(0, QueueItem(Query(text)))
        if self.current is None:
            self._advance()
        else:
            self._prefetch()
        self._update_counts()
        self.filter_edit.setFocus()

    def _coverage_toggled(self, on: bool) -> None:
        self.ctx.settings.coverage_order = on
        self.curve_hint.coverage_changed()
        self._prefetch()

    # ---- proposals ---------------------------------------------------------------------------
    def set_paused(self, paused: bool) -> None:
        """Pause prefetching the next queries (while the Chat view waits for the model); the
        query on screen is still proposed."""
        self.paused = paused
        if not paused:
            self._prefetch()

    def _prefetch(self) -> None:
        profile = self.ctx.profile
        if not profile:
            return
        wanted = ([self.current] if self.current else []) + (
            [] if self.paused else self.queue[:QUEUE_WINDOW])
        for item in wanted:
            if item.requested:
                continue
            item.requested = True
            self._request(item, profile)

    def _request(self, item: QueueItem, profile: str) -> None:
        coverage = self.coverage_box.isChecked()

        def propose(job):
            engine = job.session.engine_for(profile)
            trace = engine.propose(item.text, cancel=job.cancel)
            need = engine.coverage_need(trace) if coverage else None
            return trace, need, getattr(job.session.backend, "fingerprint", None)

        def done(result):
            item.job = None
            item.trace, item.need, item.fingerprint = result
            item.error = None
            if item is self.current:
                self._show_current()
            elif self.current is None:
                self._advance()

        def failed(exc):
            item.job = None
            item.error = exc
            if item is self.current:
                self._show_current()

        # A profile or strategy change calls item.forget_proposal(), which drops this result.
        # the query on screen before prefetched ones; anything the Chat view asks goes first
        priority = Priority.NORMAL if item is self.current else Priority.BACKGROUND
        item.job = (ModelJob(self, propose).with_priority(priority).labelled("Proposing an answer")
                    .success(done).failure(failed).run())

    def _advance(self) -> None:
        """Make the next query current: the neediest ready one with coverage order, else the first."""
        self.current = None
        if self.queue:
            index = 0
            if self.coverage_box.isChecked():
                window = self.seen.next_window(self.queue, QUEUE_WINDOW)
                ready = [(i, it) for i, it in enumerate(window) if it.trace is not None and it.need is not None]
                if ready:
                    index = max(ready, key=lambda pair: (pair[1].need, -pair[0]))[0]
            self.current = self.queue.pop(index)
        self.filter_edit.clear()
        self._show_current()
        self._prefetch()
        self._update_counts()

    # ---- display -----------------------------------------------------------------------------
    def _show_current(self) -> None:
        item = self.current
        self.top_list.clear()
        if item is None:
            done = self.n_rated + self.n_skipped
            set_plain(self.query_label, "All done: open another dataset or type a query above."
                      if done else "No queries yet: open a dataset or type one above.")
            set_plain(self.proposal_label, "")
            self.accept_button.setEnabled(False)
            self.skip_button.setEnabled(False)
            return
        set_plain(self.query_label, item.text)
        self.skip_button.setEnabled(True)
        if item.error is not None:
            set_plain(self.proposal_label, f"Could not get a proposal: {item.error}")
            self.accept_button.setEnabled(False)
            # the user can still pick from the full set; y' is then unknown, so rating needs a retry
            return
        if item.trace is None:
            set_plain(self.proposal_label, "The model is thinking…")
            self.accept_button.setEnabled(False)
            return
        set_plain(self.proposal_label, f"Model: {item.trace.model_response}")
        self.accept_button.setEnabled(True)
        for i, (response, p) in enumerate(top_choices(item.trace), 1):
            list_item = QListWidgetItem(f"{i}   {response}   ({p:.0%})")
            list_item.setData(Qt.UserRole, response)
            self.top_list.addItem(list_item)

    def _refilter(self) -> None:
        self.all_list.clear()
        for response in filter_responses(self._responses, self.filter_edit.text()):
            self.all_list.addItem(QListWidgetItem(response))
        if self.all_list.count():
            self.all_list.setCurrentRow(0)

    def move_selection(self, key) -> None:
        step = {Qt.Key_Up: -1, Qt.Key_Down: 1, Qt.Key_PageUp: -10, Qt.Key_PageDown: 10}[key]
        count = self.all_list.count()
        if count:
            row = min(max(self.all_list.currentRow() + step, 0), count - 1)
            self.all_list.setCurrentRow(row)

    def _update_counts(self) -> None:
        remaining = len(self.queue) + (1 if self.current else 0)
        total = self.n_rated + self.n_skipped + remaining
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(self.n_rated + self.n_skipped)
        agreement = f"{self.n_agreed / self.n_rated:.0%}" if self.n_rated else "–"
        set_plain(self.counts_label, f"Rated {self.n_rated}  ·  skipped {self.n_skipped}  ·  remaining {remaining}"
                                     f"  ·  model agreed with you {self.n_agreed} of {self.n_rated} ({agreement})")

    # ---- actions -----------------------------------------------------------------------------
    def accept(self) -> None:
        if self.current is not None and self.current.trace is not None:
            self.rate(self.current.trace.model_response)

    def pick_top(self, k: int) -> None:
        if self.current is None or self.current.trace is None:
            return
        choices = top_choices(self.current.trace)
        if 1 <= k <= len(choices):
            self.rate(choices[k - 1][0])

    def pick_filtered(self) -> None:
        item = self.all_list.currentItem()
        if item is not None:
            self.rate(item.text())

    def skip(self) -> None:
        """Move on; the query comes back (after a restart too) only when nothing else is left."""
        item, profile = self.current, self.ctx.profile
        if item is None:
            return
        self.n_skipped += 1
        if profile:
            text = item.text
            self.seen.add_skipped([normalise_response(text)])
            (BankWrite(self, lambda job: job.bank.skip_query(profile, text), profile=profile)
             .failure(lambda exc: self.ctx.status_message.emit(f"The skip was not kept: {exc}"))
             .run())
        self._advance()

    def rate(self, user_response: str) -> None:
        """Record (x, y', y) for the current query and move on; undo puts the query back."""
        item, profile = self.current, self.ctx.profile
        if item is None or item.trace is None or not profile:
            self.ctx.status_message.emit("Wait for the model's proposal before rating.")
            return
        model_response = item.trace.model_response
        agreed = model_response == user_response
        self.n_rated += 1
        self.n_agreed += agreed
        self.seen.set_rated(item.text, True)

        def undone(_rating):
            self.n_rated -= 1
            self.n_agreed -= agreed
            self.seen.set_rated(item.text, False)
            if self.current is not None:
                self.queue.insert(0, self.current)
            # the proposal is still valid (variant "none" does not read the bank)
            self.current = item
            self.filter_edit.clear()
            self._show_current()
            self._update_counts()

        def redone(_rating):
            self.n_rated += 1
            self.n_agreed += agreed
            self.seen.set_rated(item.text, True)
            if self.current is item:
                self._advance()
            elif item in self.queue:
                self.queue.remove(item)
            self._update_counts()

        command = AddRatingCommand(
            self.ctx, profile, item.text, model_response, user_response, source="rated",
            strategy=self.ctx.settings.strategy, fingerprint=self.ctx.inference.fingerprint,
            on_added=self.rated.emit, on_undone=undone, on_redone=redone, parent_widget=self,
            model_distribution=item.trace.model_p)
        self.ctx.undo_stack().push(command)
        self.ctx.status_message.emit(f"Rated: {one_line(user_response, 60)}")
        self._advance()
