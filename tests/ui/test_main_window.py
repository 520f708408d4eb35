"""The main window without a model: first start, profiles, onboarding, the Rate view's keys and
queue, errors as dialogs, progress in the status bar, and a clean stop on close."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QMetaObject, QObject, Qt
from PySide6.QtWidgets import QDialog

from cm_desktop.cancel import Cancelled
from cm_desktop.cm.retrieval import normalise_text
from cm_desktop.cm.user_curve import FLAT_SPAN
from cm_desktop.settings import Settings
from cm_desktop.ui.ops import BankQuery, FileTask, ModelJob
from cm_desktop.ui.resource_files import SAMPLE_PROFILE_NAME, sample_queries, sample_responses

REPO = Path(__file__).resolve().parents[2]


def test_first_start_creates_sample_profile_and_onboarding(app_window, qtbot):
    ctx, window = app_window(profile=None, onboarding_dismissed=False)
    assert ctx.profile == SAMPLE_PROFILE_NAME
    profile = ctx.bank.get_profile(SAMPLE_PROFILE_NAME)
    assert len(profile.responses) == 77 and "card arrival" in profile.responses
    # the sample queries are queued in the Rate view
    rate = window.rate_view
    qtbot.waitUntil(lambda: rate.current is not None, timeout=5000)
    assert len(rate.queue) + 1 == len(sample_queries()) >= 30
    # one screen of onboarding, dismissed for good
    assert window.onboarding.isVisible()
    qtbot.mouseClick(window.onboarding.findChild(type(window.new_profile_button)), Qt.LeftButton)
    assert not window.onboarding.isVisible()
    assert Settings.load().onboarding_dismissed is True


def test_sample_resources_ship_with_licence():
    res = REPO / "resources" / "sample_profile"
    assert (res / "responses.txt").read_text().count("\n") == 77
    assert "CC BY 4.0" in (res / "LICENSE.txt").read_text() and "Casanueva" in (res / "LICENSE.txt").read_text()
    queries = [json.loads(line) for line in (res / "queries.jsonl").read_text().splitlines()]
    responses = set(sample_responses())
    assert all(q["input"] and q["label"] in responses for q in queries)
    # enough to rate past the user's curve's flattening span several times over, every intent
    # in it, and no query twice
    assert len(queries) >= 10 * FLAT_SPAN
    assert {q["label"] for q in queries} == responses
    assert len({normalise_text(q["input"]) for q in queries}) == len(queries)


def test_new_profile_dialog_validates_and_selects(app_window, qtbot):
    ctx, window = app_window("Test")
    dialog = window.new_profile()
    dialog.name_edit.setText("Test")
    dialog.responses_edit.setPlainText("yes\nno")
    dialog._ok()
    assert "already exists" in dialog.error_label.text() and dialog.isVisible()
    dialog.name_edit.setText("Moods")
    dialog.responses_edit.setPlainText("happy\nhappy\n")
    dialog._ok()
    assert "listed twice" in dialog.error_label.text()
    dialog.responses_edit.setPlainText("happy\n\nsad\n")
    dialog._ok()
    qtbot.waitUntil(lambda: ctx.profile == "Moods", timeout=5000)
    assert ctx.bank.get_profile("Moods").responses == ("happy", "sad")
    assert window.profile_combo.currentText() == "Moods"


def test_rate_view_queue_keys_without_model(app_window, qtbot, tmp_path):
    ctx, window = app_window("Test")
    rate = window.rate_view
    path = tmp_path / "q.txt"
    path.write_text("first query\n\nsecond query\nthird query\n")
    rate.coverage_box.setChecked(False)
    rate.open_dataset(str(path))
    qtbot.waitUntil(lambda: rate.current is not None, timeout=5000)
    assert rate.current.text == "first query" and [i.text for i in rate.queue] == ["second query", "third query"]
    # no model loaded: the proposal says why, and nothing can be rated by accident
    qtbot.waitUntil(lambda: rate.current.error is not None, timeout=5000)
    assert "loading" in rate.proposal_label.text() or "not loaded" in rate.proposal_label.text()
    qtbot.keyClick(rate.filter_edit, Qt.Key_Return)
    assert ctx.bank.rating_count("Test") == 0
    # typing filters the whole response set; arrows move; Esc clears; Backspace on empty skips
    qtbot.keyClicks(rate.filter_edit, "card arr")
    assert [rate.all_list.item(i).text() for i in range(rate.all_list.count())] == ["card arrival"]
    qtbot.keyClick(rate.filter_edit, Qt.Key_Backspace)     # deletes a character, does not skip
    assert rate.current.text == "first query"
    qtbot.keyClick(rate.filter_edit, Qt.Key_Escape)
    assert rate.filter_edit.text() == "" and rate.all_list.count() == 77
    qtbot.keyClick(rate.filter_edit, Qt.Key_Down)
    assert rate.all_list.currentRow() == 1
    qtbot.keyClick(rate.filter_edit, Qt.Key_Backspace)
    assert rate.current.text == "second query" and rate.n_skipped == 1
    # a typed query goes to the front
    qtbot.keyClicks(rate.add_edit, "typed one")
    qtbot.keyClick(rate.add_edit, Qt.Key_Return)
    assert rate.queue[0].text == "typed one"
    assert "skipped 1" in rate.counts_label.text() and "remaining 3" in rate.counts_label.text()


def test_bad_dataset_shows_a_dialog_and_the_app_stays_usable(app_window, qtbot, tmp_path):
    ctx, window = app_window("Test")
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"input": "fine"}\n{"input": \n')
    window.rate_view.open_dataset(str(bad))
    qtbot.waitUntil(lambda: bool(ctx.open_error_boxes()), timeout=5000)
    box = ctx.open_error_boxes()[-1]
    assert "broken.jsonl:2:" in box.text()          # the file and the line, as `path:line:`
    assert "What to do" in box.informativeText()
    box.close()
    good = tmp_path / "good.jsonl"
    good.write_text('{"input": "fine"}\n')
    window.rate_view.open_dataset(str(good))
    qtbot.waitUntil(lambda: window.rate_view.current is not None, timeout=5000)


def test_long_op_shows_progress_with_cancel_in_status_bar(app_window, qtbot):
    ctx, window = app_window("Test")

    def slow(job):
        for i in range(2000):
            job.check()
            job.progress(i, 2000, f"step {i}")
            time.sleep(0.005)   # the work under test: it must run long enough to be cancelled

    op = FileTask(window, slow).with_progress("Slow work", cancellable=True).run()
    qtbot.waitUntil(lambda: window.op_progress.isVisible() and window.op_cancel.isVisible(), timeout=5000)
    qtbot.waitUntil(lambda: window.op_progress.value() > 0, timeout=5000)
    qtbot.mouseClick(window.op_cancel, Qt.LeftButton)
    qtbot.waitUntil(lambda: op.done, timeout=5000)
    assert op.was_cancelled and not window.op_progress.isVisible()
    assert not ctx.open_error_boxes(), "a cancel is not an error"


def test_closing_the_window_stops_running_work(app_window, qtbot):
    ctx, window = app_window("Test")
    running = threading.Event()
    bank_running = threading.Event()
    stopped = []

    def model_job(job):
        running.set()
        job.cancel.wait()   # until the window's close cancels it
        stopped.append("model")
        raise Cancelled()

    def bank_job(job):
        bank_running.set()
        job.cancel.wait()
        stopped.append("bank")
        raise Cancelled()

    ModelJob(window, model_job).run()
    BankQuery(window, bank_job).run()
    # Both jobs must be running (not just queued) when the window closes: that is the case
    # under test; a queued job is dropped without running, which left "bank" out at random.
    assert running.wait(5) and bank_running.wait(5)
    window.close()          # returns once both jobs saw the cancel (no timeout needed to pass)
    assert sorted(stopped) == ["bank", "model"]
    assert not ctx.inference._thread.isRunning()


def test_model_that_fails_to_load_shows_error_and_app_stays_usable(qtbot, tmp_path):
    from cm_desktop.app import create_app_window, start_up

    not_a_model = tmp_path / "model.gguf"
    not_a_model.write_bytes(b"this is not a model" * 100)
    ctx, window = create_app_window(tmp_path / "bank.sqlite3",
                                    settings=Settings(model_path=str(not_a_model), onboarding_dismissed=True))
    qtbot.addWidget(window)
    window.show()
    failures = []
    ctx.inference.backend_failed.connect(failures.append)
    start_up(ctx, window, load_model=True)
    qtbot.waitUntil(lambda: bool(failures) and bool(ctx.open_error_boxes()), timeout=10000)
    assert "GGUF" in ctx.open_error_boxes()[-1].text()
    assert "failed" in window.model_label.text()
    qtbot.waitUntil(lambda: ctx.profile == SAMPLE_PROFILE_NAME, timeout=5000)
    assert window.shutdown(10)


def test_window_shows_without_importing_torch_or_llama():
    """Cold start shows the window before any model library is imported."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-m", "cm_desktop.app", "--quit-after-shown"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "SHOWN torch_imported=False llama_cpp_imported=False" in out.stdout


def test_chat_keys_and_a_clear_reply_when_no_model(app_window, qtbot):
    ctx, window = app_window("Test")
    chat = window.chat_view
    qtbot.keyClicks(chat.input, "first line")
    qtbot.keyClick(chat.input, Qt.Key_Return, Qt.ShiftModifier)
    qtbot.keyClicks(chat.input, "second line")
    assert chat.input.toPlainText() == "first line\nsecond line" and not chat.replies
    with qtbot.waitSignal(chat.reply_finished, timeout=10000):
        qtbot.keyClick(chat.input, Qt.Key_Return)
    assert chat.input.toPlainText() == ""
    reply = chat.replies[-1]
    assert reply.query == "first line\nsecond line"
    assert reply.header.text() == "No reply" and ("loading" in reply.body.text() or "not loaded" in reply.body.text())
    assert not reply.up_button.isEnabled() and not reply.down_button.isEnabled()


class _RejectModalDialogs(QObject):
    """Closes each modal dialog as soon as it is shown, noting its class (the menu actions run
    the dialogs' own event loops, so the test reacts to the Show event instead of waiting)."""

    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def eventFilter(self, obj, event):  # noqa: N802 (Qt name)
        if event.type() == QEvent.Show and isinstance(obj, QDialog) and obj.isModal():
            self.seen.append(type(obj).__name__)
            QMetaObject.invokeMethod(obj, "reject", Qt.QueuedConnection)
        return False


@pytest.mark.timeout(120)
def test_file_menu_opens_import_and_export_dialogs(app_window, qtbot):
    from PySide6.QtWidgets import QApplication

    ctx, window = app_window("Test")
    file_menu = window.menuBar().actions()[0].menu()
    texts = [a.text() for a in file_menu.actions() if not a.isSeparator()]
    assert texts == ["Import bank…", "Export bank…", "Open dataset…", "Quit"]
    assert window.quit_action.shortcut().toString() == "Ctrl+Q"
    assert window.undo_action.shortcut().toString() == "Ctrl+Z"
    closer = _RejectModalDialogs()
    QApplication.instance().installEventFilter(closer)
    try:
        for action in (window.import_action, window.export_action):
            action.trigger()                    # the dialogs are modal: this returns once closed
    finally:
        QApplication.instance().removeEventFilter(closer)
    assert closer.seen == ["ImportDialog", "ExportDialog"]
    assert ctx.bank.rating_count("Test") == 0
