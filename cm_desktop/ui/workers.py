"""Background work for the GUI: bank/file ops on a thread pool, model work on one inference thread.

The GUI thread only draws. Every result reaches widgets through queued signals on a `BackgroundOp`
that lives in the GUI thread, so callbacks always run there. Cancellation is a request: the op's
`CancelToken` is checked by the work between tokens, candidates or rows.
"""

from __future__ import annotations

import gc
import inspect
import logging
import queue
import threading
import time
from typing import Any, Callable

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, QTimer, Qt, Signal, Slot
from PySide6.QtWidgets import QProgressDialog, QWidget

from cm_desktop.cancel import Cancelled, CancelToken

log = logging.getLogger(__name__)

# Ops alive right now: keeps them from being garbage collected before they finish, and lets the
# app cancel and wait for all of them at shutdown.
_live_ops: set["BackgroundOp"] = set()
_pool: QThreadPool | None = None
_serial_pool: QThreadPool | None = None


def op_pool() -> QThreadPool:
    """The pool for bank and file work (not the model: that has its own thread)."""
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(4)
    return _pool


def serial_pool() -> QThreadPool:
    """One thread: bank writes whose order matters (add a rating, undo it) go here."""
    global _serial_pool
    if _serial_pool is None:
        _serial_pool = QThreadPool()
        _serial_pool.setMaxThreadCount(1)
    return _serial_pool


def _accepted_kwargs(fn: Callable) -> set[str]:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return set()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return {"progress", "cancel"}
    return {name for name in ("progress", "cancel") if name in params}


class BackgroundOp(QObject):
    succeeded = Signal(object)
    failed = Signal(object)
    progress = Signal(int, int, str)
    finished = Signal()

    # Emitted from the worker thread, delivered queued to this object's (the GUI) thread.
    _done_from_worker = Signal(object, object)
    _progress_from_worker = Signal(int, int, str)

    def __init__(self, label: str = "", cancellable: bool = False, parent: QWidget | None = None):
        super().__init__()
        self.label = label
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
        self._progress_from_worker.connect(self._on_progress, Qt.QueuedConnection)
        _live_ops.add(self)

    # --- called from any thread -------------------------------------------------------------
    def cancel(self) -> None:
        self.token.cancel()

    def report_progress(self, done: int, total: int, text: str = "") -> None:
        """Thread-safe; throttled so a tight loop cannot flood the GUI thread."""
        now = time.monotonic()
        if done < total and now - self._last_progress_emit < 0.05:
            return
        self._last_progress_emit = now
        self._progress_from_worker.emit(int(done), int(total), str(text))

    def _finish_from_worker(self, result: Any, error: BaseException | None) -> None:
        self._done_event.set()
        self._done_from_worker.emit(result, error)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the work itself has returned (not the GUI callbacks). For shutdown/tests."""
        return self._done_event.wait(timeout)

    # --- GUI thread ---------------------------------------------------------------------------
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
            if isinstance(error, Cancelled) or (error is None and self.token.cancelled and result is None):
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

    def show_indicator_later(self, delay_ms: int) -> None:
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


def _connect_callbacks(op: BackgroundOp, parent: QWidget | None, on_success, on_failure) -> None:
    """Callbacks run on the GUI thread, and never on a widget that was already destroyed."""

    def alive() -> bool:
        return parent is None or shiboken6.isValid(parent)

    if on_success is not None:
        op.succeeded.connect(lambda result: on_success(result) if alive() else None)
    if on_failure is not None:
        op.failed.connect(lambda exc: on_failure(exc) if alive() else None)


class _OpRunnable(QRunnable):
    def __init__(self, op: BackgroundOp, fn: Callable, args: tuple, kwargs: dict):
        super().__init__()
        self.setAutoDelete(True)
        self._op, self._fn, self._args, self._kwargs = op, fn, args, kwargs

    def run(self) -> None:  # worker thread
        _invoke(self._op, self._fn, self._args, self._kwargs)


def _invoke(op: BackgroundOp, fn: Callable, args: tuple, kwargs: dict) -> None:
    result, error = None, None
    try:
        if op.token.cancelled:
            raise Cancelled()
        accepted = _accepted_kwargs(fn)
        extra = {}
        if "progress" in accepted and "progress" not in kwargs:
            extra["progress"] = op.report_progress
        if "cancel" in accepted and "cancel" not in kwargs:
            extra["cancel"] = op.token
        result = fn(*args, **kwargs, **extra)
    except BaseException as exc:  # noqa: BLE001 - every failure goes to the GUI as a value
        error = exc
        if not isinstance(exc, Cancelled):
            log.debug("background op %r failed", op.label, exc_info=True)
    op._finish_from_worker(result, error)


def _start(pool, fn: Callable, args, kwargs, parent, on_success, on_failure, label: str,
           progress_after_ms: int, cancellable: bool) -> BackgroundOp:
    op = BackgroundOp(label=label, cancellable=cancellable, parent=parent)
    _connect_callbacks(op, parent, on_success, on_failure)
    pool.start(_OpRunnable(op, fn, args, kwargs))
    op.show_indicator_later(progress_after_ms)
    return op


def run_op(fn: Callable, *args, parent: QWidget | None = None, on_success=None, on_failure=None,
           label: str = "", progress_after_ms: int = 300, cancellable: bool = False,
           **kwargs) -> BackgroundOp:
    return _start(op_pool(), fn, args, kwargs, parent, on_success, on_failure, label,
                  progress_after_ms, cancellable)


def run_serial_op(fn: Callable, *args, parent: QWidget | None = None, on_success=None, on_failure=None,
                  label: str = "", progress_after_ms: int = 300, cancellable: bool = False,
                  **kwargs) -> BackgroundOp:
    """Like run_op, but ops run one at a time in submission order (a rating, then its undo)."""
    return _start(serial_pool(), fn, args, kwargs, parent, on_success, on_failure, label,
                  progress_after_ms, cancellable)


def live_ops() -> list[BackgroundOp]:
    return list(_live_ops)


def shutdown_ops(timeout_s: float = 5.0) -> bool:
    """Cancel every running op and wait for the pool; True if everything stopped in time."""
    for op in list(_live_ops):
        op.cancel()
    ok = True
    for pool in (_pool, _serial_pool):
        if pool is not None:
            ok = pool.waitForDone(int(timeout_s * 1000)) and ok
    return ok


# --- the inference thread ---------------------------------------------------------------------

def _freeze_long_lived() -> None:
    """Move everything alive now (the model, torch, the embedder) out of the cyclic GC's scans.

    A full collection holds the GIL while it walks every tracked object; triggered by a bank import
    on a worker thread, it stalled the GUI thread for ~300 ms once torch was loaded. What a model
    load leaves behind lives until the app quits, so the collector need not look at it again.
    """
    gc.collect()
    gc.freeze()


class EngineContext:
    """What a job on the inference thread sees: the loaded backend and one CMEngine per profile.

    Lives on (and is only touched from) the inference thread; model objects are never shared.
    """

    def __init__(self, bank, engine_options: Callable[[], dict]):
        self.bank = bank
        self._backend = None
        self.backend_error: BaseException | None = None
        self._engine_options = engine_options
        self._engines: dict[str, Any] = {}
        self._engine_keys: dict[str, tuple] = {}
        self._stale: set[str] = set()
        self._stale_lock = threading.Lock()

    @property
    def backend(self):
        if self._backend is None:
            if self.backend_error is not None:
                raise RuntimeError(f"The model is not loaded: {self.backend_error}")
            raise RuntimeError("The model is still loading (or none is configured); try again in a moment.")
        return self._backend

    @property
    def has_backend(self) -> bool:
        return self._backend is not None

    def set_backend(self, backend, owned: bool = True) -> None:
        """Use `backend` from now on; an owned one is closed when replaced or at shutdown."""
        old, old_owned = self._backend, getattr(self, "_owned", True)
        self._backend = backend
        self._owned = owned
        self.backend_error = None
        self._engines.clear()
        if old is not None and old is not backend and old_owned:
            try:
                old.close()
            except Exception:  # noqa: BLE001 - closing a replaced model must not stop the new one
                log.warning("closing the previous backend failed", exc_info=True)

    def mark_stale(self, profile: str) -> None:  # any thread
        with self._stale_lock:
            self._stale.add(profile)

    def engine_for(self, profile_name: str):
        from cm_desktop.cm.engine import CMEngine

        options = dict(self._engine_options() or {})
        key = tuple(sorted((k, repr(v)) for k, v in options.items()))
        engine = self._engines.get(profile_name)
        if engine is None or self._engine_keys.get(profile_name) != key:
            engine = CMEngine(self.backend, self.bank, profile_name, **options)
            self._engines[profile_name] = engine
            self._engine_keys[profile_name] = key
            _freeze_long_lived()
            with self._stale_lock:
                self._stale.discard(profile_name)
            return engine
        with self._stale_lock:
            stale = profile_name in self._stale
            self._stale.discard(profile_name)
        if stale:
            engine.refresh()
        return engine

    def close(self) -> None:
        self._engines.clear()
        if self._backend is not None:
            try:
                if getattr(self, "_owned", True):
                    self._backend.close()
            finally:
                self._backend = None


class InferenceWorker(QObject):
    """One QThread that owns the loaded backend and the CM engines; jobs run one at a time in order."""

    backend_loading = Signal(str)          # description of what is being loaded
    backend_loaded = Signal(str, str)      # kind, fingerprint
    backend_failed = Signal(object)        # the exception
    busy_changed = Signal(str)             # label of the job now running ("" when idle)
    _busy_from_thread = Signal(str)

    def __init__(self, bank, engine_options: Callable[[], dict] | None = None, parent=None):
        super().__init__(parent)
        self.engine_ctx = EngineContext(bank, engine_options or (lambda: {}))
        self._queue: "queue.Queue[tuple[BackgroundOp, Callable] | None]" = queue.Queue()
        self._current: BackgroundOp | None = None
        self._stopping = False
        self.fingerprint: str | None = None
        self.backend_kind: str | None = None
        self._busy_from_thread.connect(self._relay_busy, Qt.QueuedConnection)
        self._thread = _InferenceThread(self)
        self._thread.start()

    def submit(self, fn: Callable, *, on_success=None, on_failure=None, label: str = "",
               cancellable: bool = True, parent: QWidget | None = None,
               progress_after_ms: int = 300) -> BackgroundOp:
        op = BackgroundOp(label=label, cancellable=cancellable, parent=parent)
        _connect_callbacks(op, parent, on_success, on_failure)
        if self._stopping:
            op._finish_from_worker(None, Cancelled())
            return op
        self._queue.put((op, fn))
        op.show_indicator_later(progress_after_ms)
        return op

    def load_backend(self, config, *, on_success=None, on_failure=None, parent=None) -> BackgroundOp:
        """Load (or replace) the model on the inference thread; the old one is closed after."""
        description = f"{getattr(config, 'kind', '?')}: {getattr(config, 'model_path', None) or getattr(config, 'model', None) or 'default model'}"
        self.backend_loading.emit(description)

        def load(engine_ctx, cancel=None):
            from cm_desktop.backends import load_backend

            try:
                backend = load_backend(config)
            except BaseException as exc:
                engine_ctx.backend_error = exc
                raise
            engine_ctx.set_backend(backend)
            _freeze_long_lived()
            return getattr(config, "kind", ""), getattr(backend, "fingerprint", "")

        def loaded(result):
            self.backend_kind, self.fingerprint = result
            self.backend_loaded.emit(*result)
            if on_success:
                on_success(result)

        def failed(exc):
            self.backend_failed.emit(exc)
            if on_failure:
                on_failure(exc)

        return self.submit(load, on_success=loaded, on_failure=failed, label="Loading the model",
                           cancellable=False, parent=parent, progress_after_ms=10**9)

    @Slot(str)
    def _relay_busy(self, label: str) -> None:
        self.busy_changed.emit(label)

    def use_backend(self, backend, *, owned: bool = False, on_success=None) -> BackgroundOp:
        """Adopt an already loaded backend (tests, benchmarks). It is used only on this thread
        from then on; a backend not owned is left open at shutdown for its owner to close."""
        def adopt(engine_ctx, cancel=None):
            engine_ctx.set_backend(backend, owned=owned)
            return getattr(backend, "kind", "llama_cpp"), getattr(backend, "fingerprint", "")

        def adopted(result):
            self.backend_kind, self.fingerprint = result
            self.backend_loaded.emit(*result)
            if on_success:
                on_success(result)

        return self.submit(adopt, on_success=adopted, label="Using the model", cancellable=False,
                           progress_after_ms=10**9)

    def mark_stale(self, profile: str) -> None:
        self.engine_ctx.mark_stale(profile)

    @property
    def current(self) -> BackgroundOp | None:
        return self._current

    def pending(self) -> int:
        return self._queue.qsize()

    def cancel_all(self) -> None:
        current = self._current
        if current is not None:
            current.cancel()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                op, _fn = item
                op.cancel()
                op._finish_from_worker(None, Cancelled())

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Cancel the running job, drop the queue, close the model on its own thread, join."""
        self._stopping = True
        self.cancel_all()
        self._queue.put(None)
        return self._thread.wait(int(timeout_s * 1000))

    # inference thread
    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            op, fn = item
            self._current = op
            self._busy_from_thread.emit(op.label)
            _invoke(op, fn, (self.engine_ctx,), {})
            self._current = None
            self._busy_from_thread.emit("")
        try:
            self.engine_ctx.close()
        except Exception:  # noqa: BLE001
            log.warning("closing the backend at shutdown failed", exc_info=True)


class _InferenceThread(QThread):
    def __init__(self, worker: InferenceWorker):
        super().__init__()
        self.setObjectName("cm-inference")
        self._worker = worker

    def run(self) -> None:
        self._worker._loop()
