"""The Rate view: go through a queue of queries, accept or correct the model's proposal.

Keys (wherever focus is in the view; typing goes to the filter box): Enter accepts the proposal
(or, while filtering, picks the highlighted response); 1–9 pick a top candidate; typing filters
the whole response set, arrows move in it; Backspace on an empty filter skips; Esc clears the
filter; Ctrl+Z is the app's Undo (the rating), never the filter box's text undo.

Proposals are computed on the inference thread and the next few queries are prefetched, so the next
one is normally ready at once. With coverage-driven order the queue is ranked after every rating,
neediest first, by where the bank's classifier hesitates most (`CMEngine.coverage_doubt`, no model
pass), and the card names the two answers it hesitates between. A rated query is never offered
again and a skipped one only when nothing else is left, across restarts too
(`rate_queue.SeenQueries`). When the user's learning curve has flattened, a hint offers the
coverage order (`curve_hint`).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFileDialog, QListWidgetItem, QWidget

from bank_store.records import normalise_response
from cm_desktop.cancel import Cancelled
from cm_desktop.cm.choices import filter_responses, top_choices
from cm_desktop.cm.coverage import RANK_LIMIT
from cm_desktop.ui.idle_tuning import GiveWay
from cm_desktop.ui.ops import BankQuery, BankWrite, FileTask, ModelJob, Priority
from cm_desktop.ui.plain import one_line, set_plain
from cm_desktop.ui.rate_layout import build_rate_view
from cm_desktop.ui.rate_queue import QueueItem, SeenQueries, doubt_text
from cm_desktop.ui.rating_commands import AddRatingCommand
from cm_desktop.datasets import Query, read_queries


# proposals computed ahead of the query on screen, so the next one is normally ready at once
PREFETCH_AHEAD = 3


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
        self._rank_job = None             # the coverage order's latest ranking
        build_rate_view(self)
        ctx.profile_changed.connect(self._on_profile_changed)
        ctx.inference.backend_loaded.connect(self._backend_loaded)
        ctx.bank_changed.connect(self._on_bank_changed)
        if ctx.profile:
            self._on_profile_changed(ctx.profile)

    # ---- profile and queue -------------------------------------------------------------------
    def _on_profile_changed(self, profile: str) -> None:
        self._responses = []
        self.seen.clear()
        for item in self._items():
            item.need = item.between = None     # the other profile's bank's doubt
        if profile:
            (BankQuery(self, lambda job: list(job.bank.get_profile(profile).responses))
             .supersedes((id(self), "responses")).labelled("Reading the profile")
             .success(self._set_responses).run())
            (BankQuery(self, lambda job: ([r.instance for r in job.bank.ratings(profile)],
                                          job.bank.skipped_queries(profile)))
             .supersedes((id(self), "seen")).labelled("Reading the ratings")
             .success(lambda seen: self._set_seen(profile, *seen)).run())
        self._restart_proposals()
        self._rank_queue()          # by the new profile's bank

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

    def _items(self) -> list[QueueItem]:
        """The query on screen, then the queued ones."""
        return ([self.current] if self.current else []) + self.queue

    def _restart_proposals(self) -> None:
        """Proposals belong to one profile and one model: drop them and ask again."""
        for item in self._items():
            item.forget_proposal()
        self._show_current()
        self._prefetch()

    def _backend_loaded(self, _kind: str, fingerprint: str) -> None:
        """Re-ask only what another model proposed or what failed; queued requests already run
        after the load (the inference thread is FIFO)."""
        for item in self._items():
            if item.error is not None or (item.trace is not None and item.fingerprint != fingerprint):
                item.forget_proposal()
        self._show_current()
        self._prefetch()
        self._rank_queue()          # one asked before any model was loaded failed

    def load_queries(self, queries: list[Query], source: str = "") -> None:
        self.queue.extend(QueueItem(q) for q in queries if not self.seen.is_rated(q.text))
        self._reorder()
        self._rank_queue()
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
        self.queue.insert(0, QueueItem(Query(text), pinned=True))
        if self.current is None:
            self._advance()
        else:
            self._prefetch()
        self._update_counts()
        self.filter_edit.setFocus()

    def _coverage_toggled(self, on: bool) -> None:
        self.ctx.settings.coverage_order = on
        self.curve_hint.coverage_changed()
        self._show_current()        # the card says why this query only in coverage order
        self._rank_queue()
        self._prefetch()

    def _on_bank_changed(self, profile: str) -> None:
        if profile and profile == self.ctx.profile:
            self._rank_queue()

    def _rank_queue(self) -> None:
        """Coverage order: rank the head of the queue by the bank's need, neediest first (after
        each bank change, a load, the order switched on). The query on screen stays; the ranking
        applies to the ones after it. It gives way to any proposal or message queued meanwhile
        (the first ranking embeds the whole queue) and then queues itself again behind it."""
        profile, worker = self.ctx.profile, self.ctx.inference
        if not (profile and self.coverage_box.isChecked() and self.queue):
            return
        items = [it for it in self.queue if not it.pinned][:RANK_LIMIT]

        def rank(job):
            engine = job.session.engine_for(profile)
            try:
                doubt = engine.coverage_doubt([it.text for it in items],
                                              cancel=GiveWay(job.cancel, worker, Priority.NORMAL))
            except Cancelled:
                job.check()     # superseded or stopped: no more tries
                return None     # gave way: what was embedded is kept for the next try
            names = engine.responses
            return [(float(need), (names[a], names[b]) if b >= 0 else None)
                    for need, (a, b) in zip(doubt.need, doubt.between)]

        def ranked(doubts):
            if profile != self.ctx.profile or not self.coverage_box.isChecked():
                return
            if doubts is None:
                self._rank_queue()
                return
            for it, (need, between) in zip(items, doubts):
                it.need, it.between = need, between
            self.queue = self.seen.ranked(self.queue)
            self._prefetch()

        # no model loaded yet, or it failed: the queue keeps its order until the next ranking
        self._rank_job = (ModelJob(self, rank).with_priority(Priority.BACKGROUND)
                          .labelled("Ordering the queue").supersedes((id(self), "rank"))
                          .success(ranked).failure(lambda _exc: None).run())

    def _rank_running(self) -> bool:
        return self._rank_job is not None and not self._rank_job.done

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
            [] if self.paused else self.queue[:PREFETCH_AHEAD])
        for item in wanted:
            if item.requested:
                continue
            item.requested = True
            self._request(item, profile)

    def _request(self, item: QueueItem, profile: str) -> None:
        def propose(job):
            engine = job.session.engine_for(profile)
            trace = engine.propose(item.text, cancel=job.cancel)
            return trace, getattr(job.session.backend, "fingerprint", None)

        def done(result):
            item.job = None
            item.trace, item.fingerprint = result
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
        """Make the next query current: the head of the queue (ranked, with coverage order)."""
        self.current = self.queue.pop(0) if self.queue else None
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
            set_plain(self.doubt_label, "")
            self.accept_button.setEnabled(False)
            self.skip_button.setEnabled(False)
            return
        set_plain(self.query_label, item.text)
        set_plain(self.doubt_label, doubt_text(item) if self.coverage_box.isChecked() else "")
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
        # counts since the app opened: the bank's own totals are on the Bank view
        set_plain(self.counts_label,
                  f"Rated {self.n_rated} since opening  ·  skipped {self.n_skipped}  ·  "
                  f"remaining {remaining}  ·  model agreed with you {self.n_agreed} of "
                  f"{self.n_rated} ({agreement})")

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
