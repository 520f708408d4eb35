"""How the GUI runs background work: four small builders, in the style of Anki's `aqt.operations`.

    BankWrite(parent, lambda job: job.bank.add_rating(...), profile="me").success(done).run()
    BankQuery(parent, lambda job: load_snapshot(job.bank, "me", job.cancel)).supersedes(key).run()
    FileTask(parent, lambda job: read_queries(path)).success(loaded).run()
    ModelJob(parent, stream).on_yield(show_piece).with_priority(Priority.INTERACTIVE).run()

- `BankWrite`: every bank write in the app goes through ONE write queue (one thread), in the order
  submitted, so an undo always runs after what it undoes. After each successful write the app
  context announces `bank_changed(profile)` once; views listen to that instead of callers
  refreshing them.
- `BankQuery`: bank reads on the read pool. `.supersedes(key)`: a newer query with the same key
  cancels the older one, whose result is then dropped (it never reaches a callback).
- `FileTask`: file or keyring work with no bank in it (datasets, model files), on the read pool.
- `ModelJob`: work on the inference thread (`job.session` is its EngineSession). A generator
  function streams: each yielded value reaches `.on_yield(fn)` on the GUI thread as it comes (as
  superqt's GeneratorWorker does), and the cancel token is checked between values. Jobs are
  queued by `.with_priority(Priority...)`, then in submission order.

The work function always gets one argument, a `Job` (`job.bank`, `job.session`, `job.cancel`,
`job.progress(done, total, text)`); callbacks run on the GUI thread, and never on a parent widget
that was already destroyed. Without `.failure()`, a failure is shown as an error dialog.
`.with_progress(label)` shows an indicator (status bar or dialog) only if the work is still running
after a short delay. `.run()` starts it and returns the `BackgroundOp` (to cancel or wait on).
"""

from __future__ import annotations

from typing import Any, Callable

import shiboken6
from PySide6.QtCore import QObject

from cm_desktop.ui.background_op import BackgroundOp, Job, read_pool, start_in_pool, write_queue
from cm_desktop.ui.inference import Priority

__all__ = ["BankQuery", "BankWrite", "FileTask", "ModelJob", "Priority", "app_context"]

# key -> the newest op submitted with `.supersedes(key)`, while it runs
_newest: dict[Any, BackgroundOp] = {}


def app_context(parent):
    """The AppContext `parent` belongs to: the context itself, or an object (a view, a dialog, an
    undo command) with a `ctx` attribute, or a widget inside one."""
    from cm_desktop.ui.context import AppContext

    node = parent
    while node is not None:
        if isinstance(node, AppContext):
            return node
        ctx = getattr(node, "ctx", None)
        if isinstance(ctx, AppContext):
            return ctx
        node = node.parent() if isinstance(node, QObject) else None
    raise LookupError(f"{parent!r} belongs to no AppContext: pass a view, a dialog or the context")


class _Op:
    """What the four builders share; each says where its work runs in `_start`."""

    _default_label = "Working"

    def __init__(self, parent, fn: Callable[[Job], Any]):
        self._parent = parent
        self._fn = fn
        self._ctx = app_context(parent)
        self._on_success: Callable | None = None
        self._on_failure: Callable | None = None
        self._label = ""
        self._show_progress = False
        self._cancellable = False
        self._key: Any = None

    def success(self, fn: Callable[[Any], None]):
        self._on_success = fn
        return self

    def failure(self, fn: Callable[[BaseException], None]):
        self._on_failure = fn
        return self

    def with_progress(self, label: str, *, cancellable: bool = False):
        """Show an indicator with `label` if the work is still running after a short delay."""
        self._label, self._show_progress, self._cancellable = label, True, cancellable
        return self

    def labelled(self, label: str):
        """Name the work (shown in errors and the status bar) without a progress indicator."""
        self._label = label
        return self

    def supersedes(self, key):
        """A newer op with the same key cancels this one and drops its result."""
        self._key = key
        return self

    def _widget(self):
        parent = self._parent
        return parent if hasattr(parent, "window") and callable(parent.window) else None

    def _alive(self) -> bool:
        parent = self._parent
        return not isinstance(parent, QObject) or shiboken6.isValid(parent)

    def run(self) -> BackgroundOp:
        op = BackgroundOp(label=self._label, cancellable=self._cancellable, parent=self._widget(),
                          is_write=isinstance(self, BankWrite))
        self._connect(op)
        if self._key is not None:
            older = _newest.get(self._key)
            if older is not None and not older.done:
                older.cancel()
            _newest[self._key] = op
            op.finished.connect(lambda key=self._key, op=op: _newest.pop(key, None)
                                if _newest.get(key) is op else None)
        self._start(op)
        if self._show_progress:
            op.show_indicator_later()
        return op

    def _connect(self, op: BackgroundOp) -> None:
        on_success, on_failure = self._on_success, self._on_failure
        if on_failure is None:
            title = self._label or f"{self._default_label} failed"
            parent, ctx = self._widget(), self._ctx

            def on_failure(exc, _parent=parent, _title=title):
                ctx.show_error(_parent if _parent is not None and shiboken6.isValid(_parent) else None,
                               _title, exc)

            op.failed.connect(on_failure)   # shown even if the parent is gone
        else:
            op.failed.connect(lambda exc: on_failure(exc) if self._alive() else None)
        if on_success is not None:
            op.succeeded.connect(lambda result: on_success(result) if self._alive() else None)

    def _start(self, op: BackgroundOp) -> None:  # pragma: no cover - each builder defines it
        raise NotImplementedError


class BankWrite(_Op):
    """A bank write, on the app's one write queue; `bank_changed(profile)` follows its success."""

    _default_label = "Changing the bank"

    def __init__(self, parent, fn: Callable[[Job], Any], *, profile: str):
        super().__init__(parent, fn)
        self._profile = profile

    def supersedes(self, key):
        raise TypeError("a bank write is never dropped: only queries supersede each other")

    def _connect(self, op: BackgroundOp) -> None:
        ctx, profile = self._ctx, self._profile
        # Connected first: views hear of the change before the caller's own callback runs.
        op.succeeded.connect(lambda _result: ctx.bank_changed.emit(profile))
        super()._connect(op)

    def _start(self, op: BackgroundOp) -> None:
        start_in_pool(write_queue(), op, self._fn, Job(op, bank=self._ctx.bank))


class BankQuery(_Op):
    """A bank read on the read pool."""

    _default_label = "Reading the bank"

    def _start(self, op: BackgroundOp) -> None:
        start_in_pool(read_pool(), op, self._fn, Job(op, bank=self._ctx.bank))


class FileTask(_Op):
    """File or keyring work on the read pool; `job.bank` is None."""

    _default_label = "Reading the file"

    def _start(self, op: BackgroundOp) -> None:
        start_in_pool(read_pool(), op, self._fn, Job(op))


class ModelJob(_Op):
    """Work on the inference thread, queued by priority; a generator function streams."""

    _default_label = "The model"

    def __init__(self, parent, fn: Callable[[Job], Any]):
        super().__init__(parent, fn)
        self._priority = Priority.NORMAL
        self._on_yield: Callable | None = None

    def with_priority(self, priority: Priority):
        self._priority = priority
        return self

    def on_yield(self, fn: Callable[[Any], None]):
        """Called on the GUI thread with each value the (generator) function yields."""
        self._on_yield = fn
        return self

    def _connect(self, op: BackgroundOp) -> None:
        super()._connect(op)
        if self._on_yield is not None:
            on_yield = self._on_yield
            op.yielded.connect(lambda value: on_yield(value) if self._alive() else None)

    def _start(self, op: BackgroundOp) -> None:
        self._ctx.inference.submit(op, self._fn, self._priority)
