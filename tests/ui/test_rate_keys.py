"""The Rate view's keys on the real window: Ctrl+Z in the filter box means the app's Undo (the
rating), not the box's text; after a button was clicked, typing and Backspace still work."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QUndoCommand

from cm_desktop.datasets import Query


class _Recorded(QUndoCommand):
    def __init__(self, log: list):
        super().__init__("rating")
        self.log = log

    def redo(self):
        self.log.append("redo")

    def undo(self):
        self.log.append("undo")


def test_ctrl_z_in_the_filter_box_is_the_apps_undo(app_window, qtbot):
    ctx, window = app_window("Test")
    rate = window.rate_view
    window.tabs.setCurrentWidget(rate)
    log: list = []
    ctx.undo_stack().push(_Recorded(log))
    rate.filter_edit.setFocus()
    qtbot.keyClicks(rate.filter_edit, "card")
    qtbot.keyClick(rate.filter_edit, Qt.Key_Z, Qt.ControlModifier)
    assert log == ["redo", "undo"]
    assert rate.filter_edit.text() == "card"


def test_keys_work_after_a_button_took_the_focus(app_window, qtbot):
    ctx, window = app_window("Test")
    rate = window.rate_view
    window.tabs.setCurrentWidget(rate)
    rate.load_queries([Query("first"), Query("second"), Query("third")])
    first = rate.current
    rate.undo_button.setFocus()
    qtbot.keyClicks(rate.undo_button, "arr")           # typing anywhere filters
    assert rate.filter_edit.text() == "arr" and rate.filter_edit.hasFocus()
    rate.filter_edit.clear()
    rate.skip_button.setFocus()
    qtbot.keyClick(rate.skip_button, Qt.Key_Backspace)  # Backspace on an empty filter skips
    assert rate.current is not first and rate.current.text == "second"


def test_a_rated_query_is_never_offered_again_after_a_restart(app_window, qtbot):
    ctx, window = app_window("Test", bank_name="bank.sqlite3")
    ctx.bank.add_rating("Test", "When will my card arrive?", "card arrival", "card arrival")
    assert window.shutdown(15)
    ctx2, window2 = app_window(None, bank_name="bank.sqlite3")
    ctx2.set_profile("Test")
    rate = window2.rate_view
    qtbot.waitUntil(lambda: bool(rate.seen.rated), timeout=15000)
    rate.load_queries([Query("when will my card  ARRIVE?"), Query("I lost my card")])
    offered = [rate.current.text] + [item.text for item in rate.queue]
    assert "I lost my card" in offered
    assert not any("arrive" in text.lower() and "when will my card" in text.lower()
                   for text in offered)


def test_a_skipped_query_waits_until_the_rest_are_done_after_a_restart(app_window, qtbot):
    queries = [Query("first question"), Query("second question"), Query("third question")]
    ctx, window = app_window("Test", bank_name="bank.sqlite3")
    rate = window.rate_view
    rate.load_queries(queries)
    assert rate.current.text == "first question"
    rate.skip()
    assert rate.current.text == "second question"
    assert window.shutdown(15)          # the skip's write is never cancelled by a shutdown
    ctx2, window2 = app_window("Test", bank_name="bank.sqlite3", create=False)
    rate = window2.rate_view
    rate.load_queries(queries)           # the same dataset opened again
    qtbot.waitUntil(lambda: rate.current is not None and rate.current.text == "second question",
                    timeout=15000)
    assert [item.text for item in rate.queue] == ["third question", "first question"]
    rate.skip()                          # skipping more: the first skip still comes last
    assert rate.current.text == "third question"
    rate.skip()
    assert rate.current.text == "first question" and rate.queue == []
