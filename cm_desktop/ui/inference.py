"""The inference thread: one QThread owns the loaded backend and the CM engines (an EngineSession).

Jobs run one at a time. The queue is ordered by priority, then by submission: a chat request
(`Priority.INTERACTIVE`) can go ahead of background prefetching (`Priority.BACKGROUND`); jobs of
equal priority run in the order they were submitted. Model objects never leave this thread.
"""

from __future__ import annotations

import enum
import itertools
import logging
import queue
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Qt, Signal, Slot

from cm_desktop.cm.session import EngineSession, freeze_long_lived
from cm_desktop.ui.background_op import BackgroundOp, Job

log = logging.getLogger(__name__)


class Priority(enum.IntEnum):
    BACKGROUND = 0     # work nobody waits for yet (prefetching proposals)
    NORMAL = 1
    INTERACTIVE = 2    # someone is waiting for it right now


_STOP = (float("-inf"), -1)   # sorts before every job: the thread ends after the running one


class InferenceWorker(QObject):
    """One QThread that owns the loaded backend and the CM engines; one job at a time."""

    backend_loading = Signal(str)          # description of what is being loaded
    backend_loaded = Signal(str, str)      # kind, fingerprint
    backend_failed = Signal(object)        # the exception
    busy_changed = Signal(str)             # label of the job now running ("" when idle)
    _busy_from_thread = Signal(str)

    def __init__(self, bank, engine_options: Callable[[], dict] | None = None, parent=None):
        super().__init__(parent)
        self.session = EngineSession(bank, engine_options or (lambda: {}))
        # (-priority, sequence) -> (op, fn): lowest key first, so higher priority, then older
        self._queue: "queue.PriorityQueue[tuple[tuple, Any]]" = queue.PriorityQueue()
        self._sequence = itertools.count()
        self._current: BackgroundOp | None = None
        self._stopping = False
        self.fingerprint: str | None = None
        self.backend_kind: str | None = None
        self._busy_from_thread.connect(self._relay_busy, Qt.QueuedConnection)
        self._thread = _InferenceThread(self)
        self._thread.start()

    def submit(self, op: BackgroundOp, fn: Callable[[Job], Any], priority: int = Priority.NORMAL) -> None:
        """Queue `fn(job)` (job.session is this thread's EngineSession); `ops.ModelJob` calls this."""
        if self._stopping:
            op.finish_unrun()
            return
        self._queue.put(((-int(priority), next(self._sequence)), (op, fn)))

    def _submit_internal(self, label: str, fn: Callable[[Job], Any], on_success, on_failure) -> BackgroundOp:
        op = BackgroundOp(label=label)
        if on_success is not None:
            op.succeeded.connect(on_success)
        if on_failure is not None:
            op.failed.connect(on_failure)
        self.submit(op, fn)
        return op

    def load_backend(self, config, *, on_success=None, on_failure=None) -> BackgroundOp:
        """Load (or replace) the model on the inference thread; the old one is closed after."""
        description = (f"{getattr(config, 'kind', '?')}: "
                       f"{getattr(config, 'model_path', None) or getattr(config, 'model', None) or 'default model'}")
        self.backend_loading.emit(description)

        def load(job: Job):
            from cm_desktop.backends import load_backend

            try:
                if getattr(config, "kind", "") == "openai":
                    # building the client contacts nobody: ask the server first, so that
                    # "loaded" is never said of a server that did not answer
                    from cm_desktop.backends.openai_api import check_server

                    check_server(config.base_url, config.model, timeout=config.timeout)
                backend = load_backend(config)
            except BaseException as exc:
                job.session.backend_error = exc
                raise
            job.session.set_backend(backend)
            freeze_long_lived()
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

        return self._submit_internal("Loading the model", load, loaded, failed)

    def use_backend(self, backend, *, owned: bool = False, on_success=None) -> BackgroundOp:
        """Adopt an already loaded backend (tests, benchmarks). It is used only on this thread
        from then on; a backend not owned is left open at shutdown for its owner to close."""
        def adopt(job: Job):
            job.session.set_backend(backend, owned=owned)
            return getattr(backend, "kind", "llama_cpp"), getattr(backend, "fingerprint", "")

        def adopted(result):
            self.backend_kind, self.fingerprint = result
            self.backend_loaded.emit(*result)
            if on_success:
                on_success(result)

        return self._submit_internal("Using the model", adopt, adopted, None)

    @Slot(str)
    def _relay_busy(self, label: str) -> None:
        self.busy_changed.emit(label)

    def mark_stale(self, profile: str) -> None:
        self.session.mark_stale(profile)

    @property
    def current(self) -> BackgroundOp | None:
        return self._current

    def pending(self) -> int:
        return self._queue.qsize()

    def interactive_waiting(self) -> bool:
        """Whether a job someone waits for is queued (any thread): idle-time work gives way."""
        return self.waiting_at(Priority.INTERACTIVE)

    def waiting_at(self, priority: "Priority") -> bool:
        """Whether a job of `priority` or higher is queued (any thread)."""
        with self._queue.mutex:
            return bool(self._queue.queue) and self._queue.queue[0][0][0] <= -int(priority)

    def cancel_all(self) -> None:
        current = self._current
        if current is not None:
            current.cancel()
        kept = []
        while True:
            try:
                key, item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                kept.append((key, item))
                continue
            op, _fn = item
            op.finish_unrun()
        for entry in kept:
            self._queue.put(entry)

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Cancel the running job, drop the queue, close the model on its own thread, join."""
        self._stopping = True
        self.cancel_all()
        self._queue.put((_STOP, None))
        return self._thread.wait(int(timeout_s * 1000))

    # inference thread
    def _loop(self) -> None:
        while True:
            _key, item = self._queue.get()
            if item is None:
                break
            op, fn = item
            self._current = op
            self._busy_from_thread.emit(op.label)
            op.run_in_this_thread(fn, Job(op, bank=self.session.bank, session=self.session))
            self._current = None
            self._busy_from_thread.emit("")
        try:
            self.session.close()
        except Exception:  # noqa: BLE001
            log.warning("closing the backend at shutdown failed", exc_info=True)


class _InferenceThread(QThread):
    def __init__(self, worker: InferenceWorker):
        super().__init__()
        self.setObjectName("cm-inference")
        self._worker = worker

    def run(self) -> None:
        self._worker._loop()
