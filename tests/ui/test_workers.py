"""The UI's background-work contract: results and errors reach the GUI thread, progress and
cancellation work, the inference thread runs jobs in order and stops cleanly."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication, QWidget

from cm_desktop.cancel import Cancelled
from cm_desktop.ui.workers import InferenceWorker, run_op, shutdown_ops


def _gui_thread():
    return QApplication.instance().thread()


def test_run_op_delivers_result_on_gui_thread(qtbot):
    seen = {}

    def work(a, b):
        seen["worker_thread"] = threading.current_thread()
        return a + b

    def on_success(result):
        seen["result"] = result
        seen["callback_on_gui"] = QThread.currentThread() is _gui_thread()

    op = run_op(work, 2, 3, on_success=on_success)
    with qtbot.waitSignal(op.finished, timeout=5000):
        pass
    assert seen["result"] == 5
    assert seen["callback_on_gui"]
    assert seen["worker_thread"] is not threading.main_thread()


def test_run_op_failure_reaches_on_failure(qtbot):
    errors = []

    def work():
        raise ValueError("bad row 7")

    op = run_op(work, on_failure=errors.append)
    with qtbot.waitSignal(op.finished, timeout=5000):
        pass
    assert len(errors) == 1 and "bad row 7" in str(errors[0])
    assert op.error is errors[0]


def test_progress_and_cancel(qtbot):
    started = threading.Event()
    progress_seen = []

    def work(progress=None, cancel=None):
        for i in range(1000):
            progress(i, 1000, f"row {i}")
            started.set()
            if cancel.cancelled:
                raise Cancelled()
            time.sleep(0.005)
        return "finished all"

    successes = []
    op = run_op(work, on_success=successes.append, cancellable=True)
    op.progress.connect(lambda d, t, s: progress_seen.append((d, t, s)))
    qtbot.waitUntil(lambda: len(progress_seen) > 2, timeout=5000)
    op.cancel()
    with qtbot.waitSignal(op.finished, timeout=5000):
        pass
    assert op.was_cancelled and not successes
    assert progress_seen[0][1] == 1000


def test_progress_indicator_appears_after_delay_and_cancels(qtbot):
    parent = QWidget()
    qtbot.addWidget(parent)
    parent.show()

    def work(cancel=None):
        while not cancel.cancelled:
            time.sleep(0.01)
        raise Cancelled()

    op = run_op(work, parent=parent, label="Long work", progress_after_ms=50, cancellable=True)
    qtbot.waitUntil(lambda: op._indicator is not None, timeout=3000)
    assert op._indicator.labelText() == "Long work"
    op._indicator.canceled.emit()
    with qtbot.waitSignal(op.finished, timeout=5000):
        pass
    assert op.was_cancelled and op._indicator is None


def test_callbacks_skip_destroyed_parent(qtbot):
    parent = QWidget()
    calls = []
    gate = threading.Event()
    op = run_op(lambda: gate.wait(5) and 1, parent=parent, on_success=calls.append)
    parent.deleteLater()
    QApplication.processEvents()
    from PySide6.QtCore import QCoreApplication, QEvent
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    gate.set()
    with qtbot.waitSignal(op.finished, timeout=5000):
        pass
    assert calls == []


def test_inference_worker_runs_jobs_in_order_on_one_thread(qtbot, tmp_path):
    worker = InferenceWorker(bank=None)
    try:
        threads, results = [], []

        def job(i):
            def fn(engine_ctx, cancel=None):
                threads.append(threading.current_thread().name)
                time.sleep(0.01)
                return i
            return fn

        ops = [worker.submit(job(i), on_success=results.append) for i in range(5)]
        with qtbot.waitSignal(ops[-1].finished, timeout=5000):
            pass
        assert results == [0, 1, 2, 3, 4]
        assert len(set(threads)) == 1 and threads[0] != threading.main_thread().name
        # no backend loaded: a job asking for it gets a clear error, not a crash
        errors = []
        op = worker.submit(lambda ctx: ctx.backend, on_failure=errors.append)
        with qtbot.waitSignal(op.finished, timeout=5000):
            pass
        assert "loading" in str(errors[0]) or "not loaded" in str(errors[0])
    finally:
        assert worker.stop(5)


def test_inference_worker_stop_cancels_running_and_queued(qtbot):
    worker = InferenceWorker(bank=None)
    running = threading.Event()

    def long_job(engine_ctx, cancel=None):
        running.set()
        while not cancel.cancelled:
            time.sleep(0.005)
        raise Cancelled()

    first = worker.submit(long_job)
    queued = worker.submit(lambda ctx: "never")
    assert running.wait(5)
    t0 = time.monotonic()
    assert worker.stop(5)
    assert time.monotonic() - t0 < 2
    qtbot.waitUntil(lambda: first.done and queued.done, timeout=3000)
    assert first.was_cancelled and queued.was_cancelled and queued.result is None


def test_shutdown_ops_cancels_pool_work(qtbot):
    def work(cancel=None):
        while not cancel.cancelled:
            time.sleep(0.005)
        raise Cancelled()

    op = run_op(work, cancellable=True)
    time.sleep(0.05)
    assert shutdown_ops(5)
    assert op.wait(1)
