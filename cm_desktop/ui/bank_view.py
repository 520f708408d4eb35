"""The Bank view: the profile's bank entries as a table, its transition matrix as a heatmap, and stats.

Everything read from SQLite is read in a background query (`cm.bank_summary.load_snapshot`) and
handed to the widgets whole, so the GUI thread never queries the bank. A newer load supersedes an
older one (its result is dropped). Deleting an entry removes the whole (y', y) pair through the
app's write queue and pushes an undo command onto the app-wide stack at once, so the stack's
order is the order of the key presses; its undo restores exactly the removed ratings (same ids).
"""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut, QUndoCommand
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QGridLayout, QGroupBox, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QPushButton, QScrollArea, QSplitter,
                               QTableView, QVBoxLayout, QWidget)

from cm_desktop.cm.bank_summary import BankSnapshot, load_snapshot, remove_pairs
from cm_desktop.ui.bank_table import (COL_AGREES, COL_COUNT, COL_MODEL, COL_SHARE, COL_USER,
                                      BankFilterProxy, BankTableModel)
from cm_desktop.ui.guidance_editor import GuidanceEditor
from cm_desktop.ui.heatmap import TransitionHeatmap
from cm_desktop.ui.ops import BankQuery, BankWrite
from cm_desktop.ui.bank_models_row import BankModelsRow
from cm_desktop.ui.plain import plain_label
from cm_desktop.ui.user_curve_plot import UserCurvePanel


class RemoveEntriesCommand(QUndoCommand):
    """Removes whole bank entries; undo restores the removed ratings, redo removes the pairs again.

    What was removed is recorded on the write thread, where the undo that follows reads it: the
    write queue runs them in order however fast they are pressed.
    """

    def __init__(self, ctx, profile: str, pairs: list[tuple[str, str]], on_removed=None,
                 parent_widget=None) -> None:
        what = f"{pairs[0][0]} → {pairs[0][1]}" if len(pairs) == 1 else f"{len(pairs)} bank entries"
        super().__init__(f"Delete {what}")
        self.ctx, self._profile, self._pairs = ctx, profile, list(pairs)
        self._removed: list = []
        self._on_removed = on_removed
        self._parent = parent_widget

    def _owner(self):
        return self._parent if self._parent is not None else self.ctx

    def redo(self) -> None:
        profile, pairs = self._profile, self._pairs

        def remove(job):
            self._removed = remove_pairs(job.bank, profile, pairs)
            return list(self._removed)

        def removed(ratings):
            n = len(ratings)
            what = f"{pairs[0][0]} → {pairs[0][1]}" if len(pairs) == 1 else f"{len(pairs)} bank entries"
            if shiboken6.isValid(self):   # the stack deletes a command a new push made unreachable
                self.setText(f"Delete {what} ({n} rating{'s' if n != 1 else ''})")
            if self._on_removed is not None:
                self._on_removed(n)

        BankWrite(self._owner(), remove, profile=profile).labelled("Deleting bank entries").success(removed).run()

    def undo(self) -> None:
        profile = self._profile

        def restore(job):
            ratings, self._removed = self._removed, []
            if not ratings:
                return 0
            return job.bank.restore_ratings(profile, ratings, ratings.distributions)

        BankWrite(self._owner(), restore, profile=profile).labelled("Restoring bank entries").run()


# ----- the view -------------------------------------------------------------------------------


def _plain(text: str = "") -> QLabel:
    return plain_label(text, wrap=False, selectable=True)


def _pct(x) -> str:
    return "—" if x is None else f"{100.0 * float(x):.0f}%"


class BankView(QWidget):
    """Table + heatmap + stats for the current profile; reloads on bank/profile changes."""

    snapshot_loaded = Signal(object)  # the BankSnapshot now shown
    entries_deleted = Signal(int)  # ratings removed by a delete from this view

    def __init__(self, ctx, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.snapshot: BankSnapshot | None = None
        self._load_op = None
        self._build()
        # Changes arrive in bursts (a rating per keypress in the Rate view): they are coalesced, and
        # a hidden view only notes that it is stale and reloads when it is shown again.
        self._stale = False
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(150)
        self._refresh_timer.timeout.connect(self.refresh)
        ctx.bank_changed.connect(self._on_bank_changed)
        ctx.profile_changed.connect(lambda _name: self.schedule_refresh())
        self._stale = True  # the first load happens when the view is first shown

    # ----- layout -----------------------------------------------------------------------------
    def _build(self) -> None:
        self.title = _plain("")
        self.title.setObjectName("bankTitle")

        stats_box = QGroupBox("Stats")
        grid = QGridLayout()
        self.ratings_label = _plain("—")
        self.sources_label = _plain("—")
        self.coverage_label = _plain("—")
        self.bank_agreement_label = _plain("—")
        # the user's own learning curve: held-out agreement as the bank grew (cm.user_curve)
        self.curve_panel = UserCurvePanel(self.ctx)
        self.curve_panel.setObjectName("agreementWithMe")
        # (name, value) rows at the left, the curve at the right: the stats stay a compact strip
        # above the table and heatmap, as high as the curve
        self.models_row = BankModelsRow(self.ctx)
        cells = [("Ratings", self.ratings_label), ("By source", self.sources_label),
                 ("Coverage of the response set", self.coverage_label),
                 ("Model agrees in the bank", self.bank_agreement_label),
                 ("Ratings by model", self.models_row)]
        for i, (name, value) in enumerate(cells):
            grid.addWidget(_plain(name), i, 0)
            grid.addWidget(value, i, 1)
        grid.setColumnStretch(1, 1)
        curve_box = QVBoxLayout()
        curve_box.setSpacing(2)
        curve_box.addWidget(_plain("Agreement with me, held out, as the bank grew"))
        curve_box.addWidget(self.curve_panel, 1)
        strip = QHBoxLayout(stats_box)
        strip.addLayout(grid, 1)
        strip.addSpacing(12)
        strip.addLayout(curve_box, 1)

        # table
        self.table_model = BankTableModel(self)
        self.proxy = BankFilterProxy(self)
        self.proxy.setSourceModel(self.table_model)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by response…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.set_filter_text)
        self.delete_button = QPushButton("Delete entry")
        self.delete_button.setToolTip("Remove every rating of the selected model response → response pairs (Delete)")
        self.delete_button.clicked.connect(self.delete_selected)
        self.delete_button.setEnabled(False)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COL_COUNT, Qt.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(COL_MODEL, QHeaderView.Stretch)
        header.setSectionResizeMode(COL_USER, QHeaderView.Stretch)
        for col in (COL_COUNT, COL_SHARE, COL_AGREES):
            header.setSectionResizeMode(col, QHeaderView.ResizeToContents)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        # the selected entry's response: what a reply for it must say
        self.guidance_editor = GuidanceEditor(self.ctx, self)
        delete_shortcut = QShortcut(QKeySequence.Delete, self.table)
        delete_shortcut.setContext(Qt.WidgetWithChildrenShortcut)
        delete_shortcut.activated.connect(self.delete_selected)
        self.count_label = _plain("")

        table_panel = QWidget()
        tl = QVBoxLayout(table_panel)
        tl.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.filter_edit, 1)
        row.addWidget(self.delete_button)
        tl.addLayout(row)
        tl.addWidget(self.table, 1)
        tl.addWidget(self.count_label)
        tl.addWidget(self.guidance_editor)

        # heatmap
        self.heatmap = TransitionHeatmap()
        self.heatmap_scroll = QScrollArea()
        self.heatmap_scroll.setWidget(self.heatmap)
        self.heatmap_scroll.setWidgetResizable(False)
        self.heatmap_scroll.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.heatmap.cell_clicked.connect(self.show_entry)
        self.log_scale_box = QCheckBox("Log scale")
        self.log_scale_box.toggled.connect(self.heatmap.set_log_scale)
        zoom_out = QPushButton("Zoom −")
        zoom_out.setToolTip("Zoom out (Ctrl+wheel)")
        zoom_out.clicked.connect(lambda: self.heatmap.zoom(-1))
        zoom_in = QPushButton("Zoom +")
        zoom_in.setToolTip("Zoom in (Ctrl+wheel)")
        zoom_in.clicked.connect(lambda: self.heatmap.zoom(1))
        heat_panel = QWidget()
        hl = QVBoxLayout(heat_panel)
        hl.setContentsMargins(0, 0, 0, 0)
        controls = QHBoxLayout()
        caption = _plain("Transition matrix: rows = model response, columns = what you meant")
        caption.setWordWrap(True)  # a one-line caption would set the window's minimum width
        controls.addWidget(caption, 1)
        controls.addWidget(self.log_scale_box)
        controls.addWidget(zoom_out)
        controls.addWidget(zoom_in)
        hl.addLayout(controls)
        hl.addWidget(self.heatmap_scroll, 1)
        self.raw_note = _plain("")
        self.raw_note.setWordWrap(True)
        hl.addWidget(self.raw_note)

        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(table_panel)
        splitter.addWidget(heat_panel)
        # Even split: the table's five columns need ~560 px to show labels whole; the heatmap
        # scrolls and zooms, so it gives up the width. The minimums keep the window within a
        # 1280-pixel screen.
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([700, 700])
        table_panel.setMinimumWidth(380)

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(stats_box)
        layout.addWidget(splitter, 1)

    # ----- loading ----------------------------------------------------------------------------
    def _on_bank_changed(self, profile: str) -> None:
        if profile == self.ctx.profile:
            self.schedule_refresh()

    def schedule_refresh(self) -> None:
        if self.isVisible():
            self._refresh_timer.start()
        else:
            self._stale = True

    def is_stale(self) -> bool:
        """True while the bank changed under a hidden view (it reloads when shown)."""
        return self._stale

    def showEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().showEvent(event)
        if self._stale:
            self.refresh()

    def refresh(self) -> None:
        """Reload the current profile's data in the background (a newer call supersedes this one)."""
        self._refresh_timer.stop()
        self._stale = False
        profile = self.ctx.profile
        if not profile:
            if self._load_op is not None and not self._load_op.done:
                self._load_op.cancel()
            self._show(None)
            return
        self.title.setText(f"Bank of profile “{profile}” (loading…)")
        self.models_row.refresh()
        self._load_op = (BankQuery(self, lambda job: load_snapshot(job.bank, profile, job.cancel))
                         .supersedes((id(self), "snapshot"))
                         .with_progress("Reading the bank")
                         .success(self._loaded)
                         .failure(lambda exc: self._load_failed(profile, exc))
                         .run())

    def is_loading(self) -> bool:
        """A reload is scheduled or running (what tests and the status bar wait on)."""
        return self._refresh_timer.isActive() or (self._load_op is not None and not self._load_op.done)

    def _loaded(self, snap: BankSnapshot) -> None:
        self._show(snap)
        # After the snapshot, so the table shows first; the panel says it is computing. Each
        # rating's y' is the one its model gave, so the curve does not depend on the loaded model.
        self.curve_panel.load(snap.profile)

    def _load_failed(self, profile: str, exc: BaseException) -> None:
        self._show(None)
        # Said in place (and in the status bar), not as a dialog: the view retries on the next change.
        self.title.setText(f"Could not read the bank of “{profile}”: {exc}")
        self.ctx.status_message.emit(f"Bank view: {exc}")

    def _show(self, snap: BankSnapshot | None) -> None:
        self.snapshot = snap
        if snap is None:
            self.title.setText("No profile selected")
            self.table_model.set_entries([])
            self.heatmap.set_matrix(None)
            for label in (self.ratings_label, self.sources_label, self.coverage_label,
                          self.bank_agreement_label):
                label.setText("—")
            self.curve_panel.load(None)
            self.count_label.setText("")
            self.raw_note.setText("")
            self.delete_button.setEnabled(False)
            return
        self.title.setText(f"Bank of profile “{snap.profile}” ({len(snap.responses)} responses)")
        self.table_model.set_entries(snap.entries)
        self.heatmap.set_matrix(snap.matrix)
        self.delete_button.setEnabled(bool(self.selected_pairs()))
        total = sum(e.count for e in snap.entries)
        self.count_label.setText(f"{len(snap.entries)} entries · {total} ratings")
        raw = list(getattr(snap.matrix, "raw_model_responses", []) or [])
        self.raw_note.setText(
            f"Below the gap: {len(raw)} model response(s) outside the response set." if raw else "")
        self._show_stats(snap.stats)
        self.snapshot_loaded.emit(snap)

    def _show_stats(self, stats: dict) -> None:
        self.ratings_label.setText(str(stats.get("ratings", "—")))
        by_source = dict(stats.get("by_source") or {})
        parts = [f"{name} {int(by_source.get(name, 0))}" for name in ("rated", "estimated", "imported")]
        parts += [f"{name} {int(n)}" for name, n in sorted(by_source.items())
                  if name not in ("rated", "estimated", "imported")]
        self.sources_label.setText(" · ".join(parts))
        self.coverage_label.setText(self.coverage_text(stats.get("coverage")))
        self.bank_agreement_label.setText(
            f"{_pct(stats.get('agreement'))} of ratings have model response = what you meant"
            if stats.get("agreement") is not None else "—")

    def coverage_text(self, coverage) -> str:
        n_responses = len(self.snapshot.responses) if self.snapshot else 0
        if coverage is None:
            return "—"
        if isinstance(coverage, dict):  # a store may report details; show what a person needs
            frac = coverage.get("fraction", coverage.get("coverage"))
            seen = coverage.get("covered", coverage.get("seen"))
            if seen is not None and n_responses:
                return f"{_pct(frac if frac is not None else int(seen) / n_responses)} ({int(seen)} of {n_responses} responses)"
            return _pct(frac)
        frac = float(coverage)
        if n_responses:
            return f"{_pct(frac)} ({round(frac * n_responses)} of {n_responses} responses)"
        return _pct(frac)

    def show_entry(self, model_response: str, user_response: str) -> bool:
        """Select the table row of (y', y) (a click on a heatmap cell); False if the bank has none."""
        for attempt in range(2):
            for r in range(self.proxy.rowCount()):
                index = self.proxy.index(r, COL_MODEL)
                if (index.data(), self.proxy.index(r, COL_USER).data()) == (model_response, user_response):
                    self.table.selectRow(r)
                    self.table.scrollTo(index)
                    return True
            if attempt == 0 and self.filter_edit.text():
                self.filter_edit.clear()  # the row may be hidden by the filter
            else:
                break
        self.table.clearSelection()
        return False

    # ----- delete + undo ----------------------------------------------------------------------
    def _selection_changed(self) -> None:
        pairs = self.selected_pairs()
        self.delete_button.setEnabled(bool(pairs))
        if pairs:
            self.guidance_editor.select(pairs[0][1])

    def selected_pairs(self) -> list[tuple[str, str]]:
        rows = {self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()}
        return [(self.table_model.entry(r).model_response, self.table_model.entry(r).user_response)
                for r in sorted(rows)]

    def delete_selected(self) -> None:
        profile = self.ctx.profile
        pairs = self.selected_pairs()
        if not profile or not pairs:
            return
        self.delete_button.setEnabled(False)
        self.delete_pairs(profile, pairs)

    def delete_pairs(self, profile: str, pairs: list[tuple[str, str]]) -> None:
        """Remove these entries (undoably); `entries_deleted(n)` follows once the write is done."""
        self.ctx.undo_stack().push(RemoveEntriesCommand(self.ctx, profile, pairs,
                                                        on_removed=self.entries_deleted.emit,
                                                        parent_widget=self))
