"""One piece of background work as the GUI sees it (`BackgroundOp`) and as the work sees it (`Job`).

The GUI thread only draws. Every result reaches widgets through queued signals on a `BackgroundOp`
that lives in the GUI thread, so callbacks always run there. Cancellation is a request: the work
checks `job.cancel` between tokens, candidates or rows. Once the GUI has cancelled an op (Stop, or a
newer query superseding it), its result is dropped: no success or failure callback runs for it.

The builders in `ops.py` create these; nothing else should need to.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Qt, Signal, Slot
from PySide6.QtWidgets import QProgressDialog, QWidget

from cm_desktop.cancel import Cancelled, CancelToken

log = logging.getLogger(__name__)

# Ops alive right now: keeps them from being garbage collected before they finish, and lets the
# app cancel and wait for all of them at shutdown.
_live_ops: set["BackgroundOp"] = set()
_read_pool: QThreadPool | None = None
_write_queue: QThreadPool | None = None
PROGRESS_DELAY_MS = 300   # an indicator appears only for work still running after this long


def read_pool() -> QThreadPool:
    """Bank reads and file work (not the model: that has its own thread)."""
    global _read_pool
    if _read_pool is None:
        _read_pool = QThreadPool()
        _read_pool.setMaxThreadCount(4)
    return _read_pool


def write_queue() -> QThreadPool:
    """One thread: every bank write in the app, one at a time, in submission order.

    A QThreadPool with one thread runs runnables of equal priority first in, first out.
    """
    global _write_queue
    if _write_queue is None:
        _write_queue = QThreadPool()
        _write_queue.setMaxThreadCount(1)
    return _write_queue


class Job:
    """What the work function is given: the bank, the model session (model jobs only), the cancel
    token to check between steps, and `progress(done, total, text)` to report how far it got."""

    def __init__(self, op: "BackgroundOp", bank=None, session=None):
        self.bank = bank
        self.session = session
        self.cancel: CancelToken = op.token
        self._op = op

    def progress(self, done: int, total: int, text: str = "") -> None:
        self._op.report_progress(done, total, text)

    def check(self) -> None:
        """Raise Cancelled if the op was cancelled."""
        self.cancel.raise_if_cancelled()


class BackgroundOp(QObject):
    succeeded = Signal(object)
    failed = Signal(object)
    yielded = Signal(object)          # each value a streaming (generator) job yields
    progress = Signal(int, int, str)
    finished = Signal()

    # Emitted from the worker thread, delivered queued to this object's (the GUI) thread.
    _done_from_worker = Signal(object, object)
    _yield_from_worker = Signal(object)
    _progress_from_worker = Signal(int, int, str)

    def __init__(self, label: str = "", cancellable: bool = False, parent: QWidget | None = None,
                 is_write: bool = False):
        super().__init__()
        self.label = label
        self.is_write = is_write   # a bank write: never dropped, shutdown waits for it
        self.cancellable = cancellable
        self.token = CancelToken()
        self.started_at = time.monotonic()
        self.done = False
        self.was_cancelled = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.last_progress: tuple[int, int, str] = (0, 0, "")
        self._parent_widget = parent
        self._indicator: QProgressDialog | None = None
        self._last_progress_emit = 0.0
        self._done_event = threading.Event()
        self._done_from_worker.connect(self._on_done, Qt.QueuedConnection)
        self._yield_from_worker.connect(self._on_yield, Qt.QueuedConnection)
        self._progress_from_worker.connect(self._on_progress, Qt.QueuedConnection)
        _live_ops.add(self)

    # --- called from any thread -------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the work to stop; from the GUI thread this also drops a result not yet delivered.

        A bank write is never cancelled: it is one transaction, and the person asked for it."""
        if not self.is_write:
            self.token.cancel()

    def report_progress(self, done: int, total: int, text: str = "") -> None:
        """Thread-safe; throttled so a tight loop cannot flood the GUI thread."""
        now = time.monotonic()
        if done < total and now - self._last_progress_emit < 0.05:
            return
        self._last_progress_emit = now
        self._progress_from_worker.emit(int(done), int(total), str(text))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the work itself has returned (not the GUI callbacks). For shutdown/tests."""
        return self._done_event.wait(timeout)

    def run_in_this_thread(self, fn: Callable[[Job], Any], job: Job) -> None:
        """Run `fn(job)` here (a worker thread) and hand the outcome to the GUI thread. A generator
        streams: each value is sent on as it comes, and the token is checked between values."""
        result, error = None, None
        try:
            job.check()
            result = fn(job)
            if hasattr(result, "__next__") and hasattr(result, "send"):   # a generator: stream it
                result = self._stream(result, job)
        except BaseException as exc:  # noqa: BLE001 - every failure goes to the GUI as a value
            error = exc
            if not isinstance(exc, Cancelled):
                log.debug("background op %r failed", self.label, exc_info=True)
        self._done_event.set()
        self._done_from_worker.emit(result, error)

    def _stream(self, generator, job: Job):
        try:
            while True:
                job.check()
                try:
                    value = next(generator)
                except StopIteration as stop:
                    return stop.value
                self._yield_from_worker.emit(value)
        finally:
            generator.close()

    def finish_unrun(self) -> None:
        """The op was dropped before it ran (shutdown, or cancelled in a queue)."""
        self.token.cancel()
        self._done_event.set()
        self._done_from_worker.emit(None, Cancelled())

    # --- GUI thread ---------------------------------------------------------------------------
    @Slot(object)
    def _on_yield(self, value: Any) -> None:
        if not self.token.cancelled:
            self.yielded.emit(value)

    @Slot(int, int, str)
    def _on_progress(self, done: int, total: int, text: str) -> None:
        self.last_progress = (done, total, text)
        if self._indicator is not None and shiboken6.isValid(self._indicator):
            self._indicator.setMaximum(max(total, 0))
            self._indicator.setValue(min(done, total) if total else 0)
            if text:
                self._indicator.setLabelText(text)
        self.progress.emit(done, total, text)

    @Slot(object, object)
    def _on_done(self, result: Any, error: BaseException | None) -> None:
        self.done = True
        self._close_indicator()
        try:
            if isinstance(error, Cancelled) or self.token.cancelled:
                self.was_cancelled = True
            elif error is not None:
                self.error = error
                self.failed.emit(error)
            else:
                self.result = result
                self.succeeded.emit(result)
        finally:
            self.finished.emit()
            _live_ops.discard(self)

    def show_indicator_later(self, delay_ms: int = PROGRESS_DELAY_MS) -> None:
        """After `delay_ms`, if still running, show progress: the main window's status bar if the
        parent's window offers one, else a progress dialog (with Cancel when cancellable)."""
        if self._parent_widget is None:
            return
        QTimer.singleShot(max(0, delay_ms), self._show_indicator)

    def _show_indicator(self) -> None:
        if self.done or self._parent_widget is None or not shiboken6.isValid(self._parent_widget):
            return
        window = self._parent_widget.window()
        show = getattr(window, "show_op_progress", None)
        if callable(show):
            show(self)
            return
        dialog = QProgressDialog(self.label or "Working…", "Cancel" if self.cancellable else "", 0, 0,
                                 self._parent_widget)
        dialog.setWindowModality(Qt.WindowModal)
        dialog.setMinimumDuration(0)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        if not self.cancellable:
            dialog.setCancelButton(None)
        else:
            dialog.canceled.connect(self.cancel)
        done, total, text = self.last_progress
        if total:
            dialog.setMaximum(total)
            dialog.setValue(min(done, total))
        if text:
            dialog.setLabelText(text)
        self._indicator = dialog
        dialog.show()

    def _close_indicator(self) -> None:
        if self._indicator is not None and shiboken6.isValid(self._indicator):
            self._indicator.close()
            self._indicator.deleteLater()
        self._indicator = None


class _PoolRunnable(QRunnable):
    def __init__(self, op: BackgroundOp, fn: Callable[[Job], Any], job: Job):
        super().__init__()
        self.setAutoDelete(True)
        self._op, self._fn, self._job = op, fn, job

    def run(self) -> None:  # worker thread
        self._op.run_in_this_thread(self._fn, self._job)


def start_in_pool(pool: QThreadPool, op: BackgroundOp, fn: Callable[[Job], Any], job: Job) -> None:
    pool.start(_PoolRunnable(op, fn, job))


def live_ops() -> list[BackgroundOp]:
    return list(_live_ops)


def shutdown_ops(timeout_s: float = 5.0) -> bool:
    """Cancel every running op and wait for the pools; True if everything stopped in time.

    Bank writes are not cancelled: each is one short transaction, and a rating the person made
    just before closing the window must reach the bank."""
    for op in list(_live_ops):
        if not op.is_write:
            op.cancel()
    ok = True
    for pool in (_read_pool, _write_queue):
        if pool is not None:
            ok = pool.waitForDone(int(timeout_s * 1000)) and ok
    return ok
