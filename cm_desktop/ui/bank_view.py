"""The Bank view: the profile's bank entries as a table, its transition matrix as a heatmap, and stats.

Everything read from SQLite is read in a background op (`load_snapshot`) and handed to the widgets
whole, so the GUI thread never queries the bank. A newer load supersedes an older one: results of a
stale load are dropped. Deleting an entry removes the whole (y', y) pair and pushes an undo command
onto the app-wide stack; its undo restores exactly the removed ratings (same ids).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut, QUndoCommand
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QGridLayout, QGroupBox, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QPushButton, QScrollArea, QSplitter,
                               QTableView, QVBoxLayout, QWidget)

from cm_desktop.ui.heatmap import TransitionHeatmap, tooltip_markup
from cm_desktop.ui.plain import plain_label

# ----- data, loaded off the GUI thread (no Qt objects) ----------------------------------------


@dataclass(frozen=True)
class BankEntry:
    model_response: str
    user_response: str
    count: int
    share: float  # of the ratings whose model response is this one
    agrees: bool  # y' == y: the model already gave what the user meant


@dataclass
class BankSnapshot:
    profile: str
    responses: list[str]
    entries: list[BankEntry]
    matrix: Any  # bank_store.TransitionMatrix
    stats: dict = field(default_factory=dict)


def load_snapshot(bank, profile: str, cancel=None) -> BankSnapshot:
    """Everything the view shows, read in one go (runs on a worker thread)."""
    from cm_desktop.cancel import check

    # One read transaction: the table, the heatmap and the stats describe the same bank state
    # even while the Rate view is writing.
    with bank.transaction(write=False):
        prof = bank.get_profile(profile)
        counts = bank.counts(profile)
        check(cancel)
        matrix = bank.transition_matrix(profile)
        stats = bank.stats(profile)
    check(cancel)
    totals: dict[str, int] = {}
    for (model_response, _user), n in counts.items():
        totals[model_response] = totals.get(model_response, 0) + int(n)
    order = {r: i for i, r in enumerate(prof.responses)}
    # Response-set order first, raw model responses after; within one model response, biggest first.
    keys = sorted(counts, key=lambda k: (k[0] not in order, order.get(k[0], 0), k[0], -counts[k], order.get(k[1], 1 << 30), k[1]))
    entries = [
        BankEntry(y_model, y_user, int(counts[(y_model, y_user)]),
                  counts[(y_model, y_user)] / totals[y_model] if totals[y_model] else 0.0,
                  y_model == y_user)
        for (y_model, y_user) in keys
    ]
    return BankSnapshot(profile=profile, responses=list(prof.responses), entries=entries, matrix=matrix, stats=stats)


def remove_pairs(bank, profile: str, pairs: list[tuple[str, str]]) -> list:
    """Remove whole bank entries, all or none (one transaction); returns the removed ratings."""
    removed = []
    with bank.transaction(write=True):
        for model_response, user_response in pairs:
            removed.extend(bank.remove_pair(profile, model_response, user_response))
    return removed


def compute_agreement(bank, profile: str, cancel=None, progress=None) -> dict:
    """`leave_one_out_agreement` with cancel/progress passed only if the engine's version takes them."""
    from cm_desktop.cm.evaluate import leave_one_out_agreement

    try:
        params = inspect.signature(leave_one_out_agreement).parameters
    except (TypeError, ValueError):
        params = {}
    kwargs = {}
    if "cancel" in params:
        kwargs["cancel"] = cancel
    if "progress" in params:
        kwargs["progress"] = progress
    return leave_one_out_agreement(bank, profile, **kwargs)


# ----- the table ------------------------------------------------------------------------------

COLUMNS = ("Model response", "You meant", "Count", "Share", "Agrees")
COL_MODEL, COL_USER, COL_COUNT, COL_SHARE, COL_AGREES = range(5)
SORT_ROLE = Qt.UserRole + 1


def _sort_key(column: int):
    """Key for one column; ties broken by the pair's text so the order is stable and total."""
    return {
        COL_MODEL: lambda e: (e.model_response.casefold(), e.user_response.casefold()),
        COL_USER: lambda e: (e.user_response.casefold(), e.model_response.casefold()),
        COL_COUNT: lambda e: e.count,
        COL_SHARE: lambda e: (e.share, e.count),
        COL_AGREES: lambda e: (e.agrees, e.count),
    }[column]


def _sorted_entries(entries: list[BankEntry], column: int, order) -> list[BankEntry]:
    """Sorted by `column`; equal numbers keep A→Z text order in either direction (two stable passes)."""
    out = sorted(entries, key=_sort_key(COL_MODEL))
    if column == COL_MODEL:
        return out[::-1] if order == Qt.DescendingOrder else out
    return sorted(out, key=_sort_key(column), reverse=order == Qt.DescendingOrder)


class BankTableModel(QAbstractTableModel):
    """One row per bank entry (y', y). DisplayRole is plain text; SORT_ROLE gives values to sort by.

    The model sorts itself with Python's sort on a key (the proxy hands `sort` down): the proxy's own
    sort calls data() twice per comparison, which took 0.3 s for 1,000 entries and 9 s for 20,000
    on the GUI thread; a keyed sort takes milliseconds.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._entries: list[BankEntry] = []
        self._sort: tuple[int, Qt.SortOrder] | None = None

    def set_entries(self, entries: list[BankEntry]) -> None:
        self.beginResetModel()
        self._entries = list(entries)
        if self._sort is not None:
            self._entries = _sorted_entries(self._entries, *self._sort)
        self.endResetModel()

    def sort(self, column: int, order: Qt.SortOrder = Qt.AscendingOrder) -> None:
        if not 0 <= column < len(COLUMNS):
            return
        self._sort = (column, order)
        self.layoutAboutToBeChanged.emit()
        old = {id(e): i for i, e in enumerate(self._entries)}
        self._entries = _sorted_entries(self._entries, column, order)
        # keep selections and the current row on the same entries
        moved = {old[id(e)]: i for i, e in enumerate(self._entries)}
        persistent = self.persistentIndexList()
        self.changePersistentIndexList(
            persistent, [self.index(moved[i.row()], i.column()) for i in persistent])
        self.layoutChanged.emit()

    def entry(self, row: int) -> BankEntry:
        return self._entries[row]

    def entries(self) -> list[BankEntry]:
        return list(self._entries)

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 (Qt name)
        return 0 if parent.isValid() else len(self._entries)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):  # noqa: N802
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        e = self._entries[index.row()]
        col = index.column()
        if role == Qt.ToolTipRole and col in (COL_MODEL, COL_USER):
            # QToolTip guesses rich text: bank text goes in escaped so `<img ...>` stays characters
            return tooltip_markup(e.model_response if col == COL_MODEL else e.user_response)
        if role == Qt.DisplayRole:
            if col == COL_MODEL:
                return e.model_response
            if col == COL_USER:
                return e.user_response
            if col == COL_COUNT:
                return str(e.count)
            if col == COL_SHARE:
                return f"{100.0 * e.share:.0f}%"
            if col == COL_AGREES:
                return "yes" if e.agrees else "no"
        if role == SORT_ROLE:
            return (e.model_response.casefold(), e.user_response.casefold(), e.count, e.share, int(e.agrees))[col]
        if role == Qt.TextAlignmentRole and col in (COL_COUNT, COL_SHARE):
            return int(Qt.AlignRight | Qt.AlignVCenter)
        return None


class BankFilterProxy(QSortFilterProxyModel):
    """Filters (case-insensitively, either response's text); sorting is the source model's."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self._needle = ""

    def sort(self, column: int, order: Qt.SortOrder = Qt.AscendingOrder) -> None:
        # The proxy stays unsorted (source order, filtered); the source sorts with a key.
        self.sourceModel().sort(column, order)

    def set_filter_text(self, text: str) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9 (invalidateFilter is deprecated there)
            self.beginFilterChange()
            self._needle = text.strip().casefold()
            self.endFilterChange()
        else:
            self._needle = text.strip().casefold()
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:  # noqa: N802
        if not self._needle:
            return True
        entry = self.sourceModel().entry(source_row)
        return self._needle in entry.model_response.casefold() or self._needle in entry.user_response.casefold()


# ----- undo -----------------------------------------------------------------------------------


class RemoveEntriesCommand(QUndoCommand):
    """Undo of a deletion restores the removed ratings; redo removes the same pairs again.

    The first redo (QUndoStack.push calls it) does nothing: the removal already ran in the background
    before the command was pushed, so the stack only records what happened.
    """

    def __init__(self, ctx, profile: str, pairs: list[tuple[str, str]], removed: list) -> None:
        n = len(removed)
        what = f"{pairs[0][0]} → {pairs[0][1]}" if len(pairs) == 1 else f"{len(pairs)} bank entries"
        super().__init__(f"Delete {what} ({n} rating{'s' if n != 1 else ''})")
        self._ctx, self._profile, self._pairs, self._removed = ctx, profile, list(pairs), list(removed)
        self._first_redo = True

    def redo(self) -> None:
        if self._first_redo:
            self._first_redo = False
            return
        ctx, profile = self._ctx, self._profile

        def done(removed):
            self._removed = list(removed)
            ctx.bank_changed.emit(profile)

        ctx.run(remove_pairs, ctx.bank, profile, self._pairs, label="Deleting bank entries", on_success=done)

    def undo(self) -> None:
        ctx, profile = self._ctx, self._profile
        ctx.run(ctx.bank.restore_ratings, profile, list(self._removed), label="Restoring bank entries",
                on_success=lambda _n: ctx.bank_changed.emit(profile))


# ----- the view -------------------------------------------------------------------------------


def _plain(text: str = "") -> QLabel:
    return plain_label(text, wrap=False, selectable=True)


def _pct(x) -> str:
    return "—" if x is None else f"{100.0 * float(x):.0f}%"


class BankView(QWidget):
    """Table + heatmap + stats for the current profile; reloads on bank/profile changes."""

    snapshot_loaded = Signal(object)  # the BankSnapshot now shown
    agreement_loaded = Signal(object)  # the leave-one-out dict, or the exception
    entries_deleted = Signal(int)  # ratings removed by a delete from this view

    def __init__(self, ctx, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.snapshot: BankSnapshot | None = None
        self.agreement: dict | None = None
        self._generation = 0
        self._load_op = None
        self._agreement_op = None
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
        grid = QGridLayout(stats_box)
        self.ratings_label = _plain("—")
        self.sources_label = _plain("—")
        self.coverage_label = _plain("—")
        self.bank_agreement_label = _plain("—")
        self.agreement_label = _plain("—")
        self.agreement_label.setObjectName("agreementWithMe")
        # two columns of (name, value): the stats stay a compact strip above the table and heatmap
        cells = [("Ratings", self.ratings_label), ("By source", self.sources_label),
                 ("Coverage of the response set", self.coverage_label),
                 ("Model agrees in the bank", self.bank_agreement_label)]
        for i, (name, value) in enumerate(cells):
            grid.addWidget(_plain(name), i // 2, 2 * (i % 2))
            grid.addWidget(value, i // 2, 2 * (i % 2) + 1)
        grid.addWidget(_plain("Agreement with me (held out)"), 2, 0)
        grid.addWidget(self.agreement_label, 2, 1, 1, 3)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)

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
        self.table.selectionModel().selectionChanged.connect(
            lambda *_: self.delete_button.setEnabled(bool(self.selected_pairs())))
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
        self._generation += 1
        generation = self._generation
        for op in (self._load_op, self._agreement_op):
            if op is not None and not op.done:
                op.cancel()
        profile = self.ctx.profile
        if not profile:
            self._show(None)
            return
        self.title.setText(f"Bank of profile “{profile}” (loading…)")
        self._load_op = self.ctx.run(
            load_snapshot, self.ctx.bank, profile, label="Reading the bank", parent=self,
            on_success=lambda snap: self._loaded(generation, snap),
            on_failure=lambda exc: self._load_failed(generation, profile, exc),
        )

    def is_loading(self) -> bool:
        """A reload is scheduled or running (what tests and the status bar wait on)."""
        return self._refresh_timer.isActive() or (self._load_op is not None and not self._load_op.done)

    def _loaded(self, generation: int, snap: BankSnapshot) -> None:
        if generation != self._generation:
            return  # a newer load is on its way
        self._show(snap)
        self.agreement = None
        self.agreement_label.setText("computing…")
        self._agreement_op = self.ctx.run(
            compute_agreement, self.ctx.bank, snap.profile, label="Agreement with me", parent=self,
            cancellable=True, progress_after_ms=10**9,  # the stats row shows it; no dialog needed
            on_success=lambda result: self._agreement_done(generation, result),
            on_failure=lambda exc: self._agreement_failed(generation, exc),
        )

    def _load_failed(self, generation: int, profile: str, exc: BaseException) -> None:
        if generation != self._generation:
            return
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
                          self.bank_agreement_label, self.agreement_label):
                label.setText("—")
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

    def _agreement_done(self, generation: int, result: dict) -> None:
        if generation != self._generation:
            return
        self.agreement = dict(result)
        self.agreement_label.setText(self.agreement_text(self.agreement))
        self.agreement_loaded.emit(self.agreement)

    def _agreement_failed(self, generation: int, exc: BaseException) -> None:
        if generation != self._generation:
            return
        # Not worth a dialog: the rest of the view is fine; say why in place.
        self.agreement_label.setText(f"not available ({type(exc).__name__}: {exc})")
        self.agreement_loaded.emit(exc)

    @staticmethod
    def agreement_text(result: dict) -> str:
        n = int(result.get("n", 0) or 0)
        if n == 0:
            return "no ratings to hold out yet"
        return (f"raw model agrees with you {_pct(result.get('model'))} · with CM {_pct(result.get('cm'))}"
                f" (over {n} held-out rating{'s' if n != 1 else ''})")

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

        def done(removed):
            if removed:
                self.ctx.undo_stack().push(RemoveEntriesCommand(self.ctx, profile, pairs, removed))
            self.ctx.bank_changed.emit(profile)
            self.entries_deleted.emit(len(removed))

        self.ctx.run(remove_pairs, self.ctx.bank, profile, pairs, label="Deleting bank entries",
                     parent=self, on_success=done)
