"""The Bank view's table: one row per bank entry (y', y), sorted with a key, filtered by text."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt

from cm_desktop.cm.bank_summary import BankEntry
from cm_desktop.ui.heatmap import tooltip_markup

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
