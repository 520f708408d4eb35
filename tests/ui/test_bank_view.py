"""The Bank view on a real SQLite bank and the real AppContext: table, sorting/filtering, delete +
undo, the heatmap's geometry and tooltips, and the stats row against the bank's own numbers."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QHelpEvent
from PySide6.QtWidgets import QApplication, QToolTip

from cm_desktop.ui.bank_table import COL_COUNT, COL_MODEL, COL_SHARE, COL_USER
from cm_desktop.ui.bank_view import BankView
from cm_desktop.ui.heatmap import TransitionHeatmap, colour_values, tooltip_markup

RESPONSES = ["card arrival", "lost or stolen card", "request refund", "top up failed", "<img src=x>"]
# (model response, user response) -> how many ratings
PAIRS = {
    ("card arrival", "card arrival"): 3,
    ("card arrival", "lost or stolen card"): 2,
    ("request refund", "top up failed"): 1,
    ("top up failed", "top up failed"): 1,
    ("<img src=x>", "request refund"): 2,
    ("something off-list", "card arrival"): 1,  # a raw model response, outside the set
}


@pytest.fixture
def app_ctx(bank, qtbot, monkeypatch):
    """The real AppContext over the test's bank, with the profile filled with PAIRS."""
    # The agreement score embeds the rated instances; the hashed embedder is the app's own
    # torch-free embedder, so these tests do not load MiniLM (the engine's tests cover that).
    monkeypatch.setenv("CM_EMBEDDER", "hashed")
    from cm_desktop.settings import Settings
    from cm_desktop.ui.context import AppContext

    bank.create_profile("me", RESPONSES)
    i = 0
    for (y_model, y_user), n in PAIRS.items():
        for _ in range(n):
            i += 1
            bank.add_rating("me", f"query number {i} about {y_user}", y_model, y_user,
                            source="imported" if y_model.startswith("something") else "rated")
    ctx = AppContext(Settings(), bank)
    ctx.set_profile("me")
    yield ctx
    ctx.inference.stop()
    from cm_desktop.ui.background_op import shutdown_ops

    shutdown_ops()


def _wait_loaded(qtbot, view, timeout=10000):
    """Wait until the view has shown a snapshot and its learning curve (no load in flight)."""
    qtbot.waitUntil(lambda: view.snapshot is not None and not view.is_loading()
                    and view.curve_panel.curve is not None, timeout=timeout)


@pytest.fixture
def view(app_ctx, qtbot):
    v = BankView(app_ctx)
    qtbot.addWidget(v)
    v.resize(1100, 700)
    v.show()
    _wait_loaded(qtbot, v)
    return v


def _proxy_rows(view):
    proxy = view.proxy
    return [tuple(proxy.index(r, c).data() for c in range(proxy.columnCount())) for r in range(proxy.rowCount())]


def test_table_shows_the_banks_counts_and_shares(view, bank):
    counts = bank.counts("me")
    shown = {(row[COL_MODEL], row[COL_USER]): row for row in _proxy_rows(view)}
    assert set(shown) == set(counts) == set(PAIRS)
    for (y_model, y_user), n in counts.items():
        row = shown[(y_model, y_user)]
        assert row[COL_COUNT] == str(n)
        total = sum(m for (a, _b), m in counts.items() if a == y_model)
        assert row[COL_SHARE] == f"{100 * n / total:.0f}%"
        assert row[4] == ("yes" if y_model == y_user else "no")
    # markup from the bank is a plain string in the model (no rich-text delegate), and its
    # tooltip is escaped (QToolTip would otherwise guess rich text and load the image)
    assert ("<img src=x>", "request refund") in shown
    proxy = view.proxy
    row = next(r for r in range(proxy.rowCount()) if proxy.index(r, COL_MODEL).data() == "<img src=x>")
    assert proxy.index(row, COL_MODEL).data(Qt.ToolTipRole) == tooltip_markup("<img src=x>")
    assert "<img" not in proxy.index(row, COL_MODEL).data(Qt.ToolTipRole)
    assert view.count_label.text() == f"{len(counts)} entries · {sum(counts.values())} ratings"


def test_sorting_and_filtering(view, qtbot):
    view.table.sortByColumn(COL_COUNT, Qt.DescendingOrder)
    counts = [int(r[COL_COUNT]) for r in _proxy_rows(view)]
    assert counts == sorted(counts, reverse=True) and counts[0] == 3
    view.table.sortByColumn(COL_COUNT, Qt.AscendingOrder)
    counts = [int(r[COL_COUNT]) for r in _proxy_rows(view)]
    assert counts == sorted(counts) and counts[-1] == 3
    view.table.sortByColumn(COL_MODEL, Qt.AscendingOrder)
    models = [r[COL_MODEL] for r in _proxy_rows(view)]
    assert models == sorted(models, key=str.casefold)
    # equal counts read A→Z whichever way the counts are sorted
    for order in (Qt.DescendingOrder, Qt.AscendingOrder):
        view.table.sortByColumn(COL_COUNT, order)
        ones = [(r[COL_MODEL].casefold(), r[COL_USER].casefold()) for r in _proxy_rows(view) if r[COL_COUNT] == "1"]
        assert len(ones) == 3 and ones == sorted(ones)

    qtbot.keyClicks(view.filter_edit, "CARD")  # case-insensitive, either column
    rows = _proxy_rows(view)
    assert rows and all("card" in (r[COL_MODEL] + r[COL_USER]).lower() for r in rows)
    assert len(rows) == sum(1 for a, b in PAIRS if "card" in (a + b).lower())
    view.filter_edit.setText("refund")
    assert {(r[COL_MODEL], r[COL_USER]) for r in _proxy_rows(view)} == {
        ("request refund", "top up failed"), ("<img src=x>", "request refund")}
    view.filter_edit.clear()
    assert len(_proxy_rows(view)) == len(PAIRS)


def test_sorting_keeps_the_selection_and_sorts_big_banks(view, qtbot):
    # How long the sort takes is measured in benchmarks/heatmap_bench.py (keyed vs proxy sort).
    from cm_desktop.cm.bank_summary import BankEntry

    _select_pair(view, ("request refund", "top up failed"))
    view.table.sortByColumn(COL_USER, Qt.DescendingOrder)
    assert view.selected_pairs() == [("request refund", "top up failed")]
    view.table.sortByColumn(COL_SHARE, Qt.AscendingOrder)
    assert view.selected_pairs() == [("request refund", "top up failed")]

    # 150 responses, densely rated: 22,500 entries
    big = [BankEntry(f"model {i}", f"user {j}", (i * j) % 17 + 1, ((i * j) % 17 + 1) / 1000, i == j)
           for i in range(150) for j in range(150)]
    view.table_model.set_entries(big)
    view.table.sortByColumn(COL_COUNT, Qt.DescendingOrder)
    counts = [int(view.proxy.index(r, COL_COUNT).data()) for r in range(0, view.proxy.rowCount(), 97)]
    assert counts == sorted(counts, reverse=True) and view.proxy.rowCount() == len(big)


def _select_pair(view, pair):
    proxy = view.proxy
    for r in range(proxy.rowCount()):
        if (proxy.index(r, COL_MODEL).data(), proxy.index(r, COL_USER).data()) == pair:
            view.table.selectRow(r)
            return
    raise AssertionError(f"{pair} not in the table")


def test_delete_key_removes_the_entry_and_undo_restores_it(view, bank, app_ctx, qtbot):
    pair = ("card arrival", "lost or stolen card")
    # the model's distributions stored with the entry's ratings come back with them
    pair_ids = {r.id for r in bank.ratings("me") if (r.model_response, r.user_response) == pair}
    bank.set_model_distributions("me", {rid: [0.5, 0.2, 0.1, 0.1, 0.1] for rid in pair_ids})
    before_counts = bank.counts("me")
    before_ids = {r.id for r in bank.ratings("me")}
    _select_pair(view, pair)
    assert view.selected_pairs() == [pair]
    view.table.setFocus()
    with qtbot.waitSignal(view.entries_deleted, timeout=5000) as deleted:
        qtbot.keyClick(view.table, Qt.Key_Delete)
    assert deleted.args == [2]
    _wait_loaded(qtbot, view)
    assert pair not in bank.counts("me")
    assert pair not in {(r[COL_MODEL], r[COL_USER]) for r in _proxy_rows(view)}
    assert app_ctx.undo_stack().canUndo()

    with qtbot.waitSignal(app_ctx.bank_changed, timeout=5000):
        app_ctx.undo_stack().undo()
    _wait_loaded(qtbot, view)
    assert bank.counts("me") == before_counts
    assert {r.id for r in bank.ratings("me")} == before_ids  # the same ratings, not look-alikes
    assert set(bank.model_distributions("me")[0]) == pair_ids
    assert pair in {(r[COL_MODEL], r[COL_USER]) for r in _proxy_rows(view)}

    with qtbot.waitSignal(app_ctx.bank_changed, timeout=5000):
        app_ctx.undo_stack().redo()
    _wait_loaded(qtbot, view)
    assert pair not in bank.counts("me")


def test_delete_button_removes_several_selected_entries(view, bank, qtbot):
    view.table.sortByColumn(COL_MODEL, Qt.AscendingOrder)
    view.filter_edit.setText("top up")
    view.table.selectAll()
    pairs = set(view.selected_pairs())
    assert pairs == {("request refund", "top up failed"), ("top up failed", "top up failed")}
    assert view.delete_button.isEnabled()
    with qtbot.waitSignal(view.entries_deleted, timeout=5000):
        view.delete_button.click()
    _wait_loaded(qtbot, view)
    assert not pairs & set(bank.counts("me"))
    assert bank.rating_count("me") == sum(PAIRS.values()) - 2


def test_heatmap_cell_under_a_point_and_its_tooltip(view, bank, qtbot):
    hm = view.heatmap
    matrix = bank.transition_matrix("me")
    assert hm.col_labels() == RESPONSES
    assert hm.row_labels() == RESPONSES + matrix.raw_model_responses
    cell = hm.cell_size()
    g = hm.grid_rect()
    # a point near a cell's corner (not its centre) still maps to that cell
    row, col = RESPONSES.index("card arrival"), RESPONSES.index("lost or stolen card")
    assert hm.cell_at(QPoint(g.left() + col * cell + 1, g.top() + row * cell + cell - 1)) == (
        "card arrival", "lost or stolen card")
    assert hm.cell_at(QPoint(g.left() + 0, g.top() + 0)) == ("card arrival", "card arrival")
    # raw model responses sit below a one-row gap
    n = len(RESPONSES)
    assert hm.cell_at(QPoint(g.left() + 1, g.top() + n * cell + 1)) is None
    assert hm.cell_at(QPoint(g.left() + 1, g.top() + (n + 1) * cell + 1)) == ("something off-list", "card arrival")
    assert hm.cell_at(QPoint(g.left() - 1, g.top() + 1)) is None
    assert hm.cell_at(QPoint(g.right() + 5, g.top() + 1)) is None

    assert hm.tooltip_for("card arrival", "lost or stolen card") == (
        "model said card arrival → you meant lost or stolen card: 2 ratings (40%)")
    assert hm.tooltip_for("something off-list", "card arrival") == (
        "model said something off-list → you meant card arrival: 1 rating (100%)")
    assert hm.tooltip_for("request refund", "card arrival").endswith(": 0 ratings (0%)")

    # a real hover: the tooltip event shows the text, with bank markup as characters
    point = hm.cell_centre("<img src=x>", "request refund")
    hm.event(QHelpEvent(QHelpEvent.ToolTip, point, hm.mapToGlobal(point)))
    expected = "model said <img src=x> → you meant request refund: 2 ratings (100%)"
    assert QToolTip.isVisible()
    assert QToolTip.text() == tooltip_markup(expected)
    assert "&lt;img src=x&gt;" in QToolTip.text()
    QToolTip.hideText()

    # a click on a cell selects that entry in the table (clearing a filter that hides it)
    view.filter_edit.setText("refund")
    qtbot.mouseClick(hm, Qt.LeftButton, pos=hm.cell_centre("card arrival", "lost or stolen card"))
    assert view.selected_pairs() == [("card arrival", "lost or stolen card")]
    assert view.filter_edit.text() == ""
    qtbot.mouseClick(hm, Qt.LeftButton, pos=hm.cell_centre("request refund", "card arrival"))  # empty cell
    assert view.selected_pairs() == []

    # zoom keeps the mapping consistent
    hm.zoom(2)
    assert hm.cell_size() > cell
    assert hm.cell_at(hm.cell_centre("top up failed", "top up failed")) == ("top up failed", "top up failed")


def test_heatmap_colours_are_row_normalised_with_a_log_option(view, bank):
    hm = view.heatmap
    image = hm.image()
    n = len(RESPONSES)
    assert (image.width(), image.height()) == (n, n + 1 + 1)  # members, gap, one raw row
    r_arrival = RESPONSES.index("card arrival")
    c_lost = RESPONSES.index("lost or stolen card")
    darker = image.pixelColor(r_arrival, r_arrival).lightness()   # 3 of 5 ratings
    lighter = image.pixelColor(c_lost, r_arrival).lightness()     # 2 of 5
    single = image.pixelColor(RESPONSES.index("top up failed"), RESPONSES.index("top up failed")).lightness()
    empty = image.pixelColor(c_lost, c_lost).lightness()           # no ratings in that row
    assert single < darker < lighter < empty
    counts = bank.transition_matrix("me").counts
    linear = colour_values(counts)
    np.testing.assert_allclose(linear[r_arrival, [r_arrival, c_lost]], [0.6, 0.4])
    logged = colour_values(counts, log_scale=True)
    np.testing.assert_allclose(logged[r_arrival, r_arrival], np.log1p(3) / np.log1p(5))
    view.log_scale_box.setChecked(True)
    assert hm.log_scale()
    assert hm.image().pixelColor(c_lost, r_arrival) != image.pixelColor(c_lost, r_arrival)


def test_heatmap_of_150_responses_paints(qtbot):
    # How long building and painting take is measured in benchmarks/heatmap_bench.py.
    from bank_store.records import TransitionMatrix

    rng = np.random.default_rng(0)
    r = 150
    responses = [f"response number {i}" for i in range(r)]
    counts = rng.poisson(0.3, size=(r, r)).astype(np.int64)
    np.fill_diagonal(counts, 20)
    hm = TransitionHeatmap()
    qtbot.addWidget(hm)
    matrix = TransitionMatrix(responses, counts, ["raw one"], np.ones((1, r), dtype=np.int64))
    hm.set_matrix(matrix)
    hm.set_cell_size(12)  # labels on
    pixmap = hm.grab()
    assert pixmap.width() >= 150 * 12 and pixmap.height() >= 151 * 12
    assert hm.cell_at(hm.cell_centre("raw one", "response number 7")) == ("raw one", "response number 7")
    assert hm.count("response number 3", "response number 3") == 20


def test_stats_match_the_bank(view, bank):
    stats = bank.stats("me")
    total = sum(PAIRS.values())
    assert stats["ratings"] == total
    assert view.ratings_label.text() == str(total)
    by_source = stats["by_source"]
    assert view.sources_label.text() == (
        f"rated {by_source['rated']} · estimated {by_source['estimated']} · imported {by_source['imported']}")
    assert by_source["imported"] == 1 and by_source["rated"] == total - 1
    seen = {r for pair in PAIRS for r in pair} & set(RESPONSES)
    assert view.coverage_label.text() == (
        f"{100 * len(seen) / len(RESPONSES):.0f}% ({len(seen)} of {len(RESPONSES)} responses)")
    agree = sum(n for (a, b), n in PAIRS.items() if a == b)
    assert view.bank_agreement_label.text().startswith(f"{100 * agree / total:.0f}%")

    # the curve: one point per rating of the user's own; the imported one has a y' outside the
    # response set, so it is not even bank for the curve
    curve = view.curve_panel.curve
    assert len(curve) == by_source["rated"] and curve.total_ratings == total - 1
    model_agree = sum(n for (a, b), n in PAIRS.items() if a == b and not a.startswith("something"))
    x, model, cm = view.curve_panel.plot.series()
    assert list(x) == list(range(1, len(curve) + 1))
    assert int(curve.model_agrees.sum()) == model_agree
    assert view.curve_panel.summary.text() == (
        f"Held out, over your {len(curve)} ratings: raw model {100 * model[-1]:.0f}%"
        f" · with CM {100 * cm[-1]:.0f}%")


def test_refreshes_on_bank_and_profile_change(view, bank, app_ctx, qtbot):
    bank.add_rating("me", "where is my new card", "request refund", "card arrival")
    app_ctx.bank_changed.emit("me")
    qtbot.waitUntil(lambda: ("request refund", "card arrival") in {
        (r[COL_MODEL], r[COL_USER]) for r in _proxy_rows(view)}, timeout=5000)
    _wait_loaded(qtbot, view)

    bank.create_profile("empty one", ["yes", "no"])
    app_ctx.set_profile("empty one")
    qtbot.waitUntil(lambda: view.snapshot is not None and view.snapshot.profile == "empty one", timeout=5000)
    _wait_loaded(qtbot, view)
    assert view.proxy.rowCount() == 0
    assert view.ratings_label.text() == "0"
    assert len(view.curve_panel.curve) == 0
    assert view.curve_panel.summary.text().startswith("No ratings of your own yet")
    assert view.heatmap.image() is not None and view.heatmap.row_labels() == ["yes", "no"]


def test_a_view_never_shown_reads_nothing(app_ctx, qtbot):
    hidden = BankView(app_ctx)
    qtbot.addWidget(hidden)
    QApplication.processEvents()
    # no reload timer is running and no read was started: nothing can load later either
    assert hidden.is_stale() and hidden.snapshot is None and not hidden.is_loading()


def test_a_missing_profile_is_reported_in_place(view, bank, app_ctx, qtbot):
    bank.create_profile("short lived", ["x", "y"])
    app_ctx.set_profile("short lived")
    _wait_loaded(qtbot, view)
    bank.delete_profile("short lived")
    with qtbot.waitSignal(app_ctx.status_message, timeout=5000) as said:
        app_ctx.bank_changed.emit("short lived")
    assert "short lived" in said.args[0]
    assert view.title.text().startswith("Could not read the bank of “short lived”")
    assert view.snapshot is None and view.proxy.rowCount() == 0
    assert not app_ctx.open_error_boxes()


def test_a_hidden_view_reloads_when_shown(view, bank, app_ctx, qtbot):
    view.hide()
    bank.add_rating("me", "top me up please", "top up failed", "request refund")
    app_ctx.bank_changed.emit("me")
    QApplication.processEvents()
    assert view.is_stale() and not view.is_loading()
    assert ("top up failed", "request refund") not in {(r[COL_MODEL], r[COL_USER]) for r in _proxy_rows(view)}
    view.show()
    qtbot.waitUntil(lambda: ("top up failed", "request refund") in {
        (r[COL_MODEL], r[COL_USER]) for r in _proxy_rows(view)}, timeout=5000)
    assert not view.is_stale()
    _wait_loaded(qtbot, view)


def test_labels_are_plain_text(view):
    from PySide6.QtWidgets import QLabel

    for label in view.findChildren(QLabel):
        assert label.textFormat() == Qt.PlainText, label.text()
