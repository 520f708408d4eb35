"""What work on the inference thread sees: the loaded backend and one CMEngine per profile.

An `EngineSession` lives on (and is only touched from) one thread, the one that owns the model:
model objects are never shared between threads. Only `mark_stale` may be called from any thread
(a bank write elsewhere makes the engine re-read the bank before its next query). No Qt here:
the desktop app drives it from its inference thread, a script or test can drive it directly.
"""

from __future__ import annotations

import gc
import logging
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)


def freeze_long_lived() -> None:
    """Move everything alive now (the model, torch, the embedder) out of the cyclic GC's scans.

    A full collection holds the GIL while it walks every tracked object; triggered by a bank import
    on a worker thread, it stalled the GUI thread for ~300 ms once torch was loaded. What a model
    load leaves behind lives until the app quits, so the collector need not look at it again.
    """
    gc.collect()
    gc.freeze()


class EngineSession:
    """The backend in use and a cached CMEngine per profile, rebuilt when the engine options change."""

    def __init__(self, bank, engine_options: Callable[[], dict]):
        self.bank = bank
        self._backend = None
        self._owned = True
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
        old, old_owned = self._backend, self._owned
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
        from cm_desktop.paths import tuned_encoders_dir

        options = dict(self._engine_options() or {})
        key = tuple(sorted((k, repr(v)) for k, v in options.items()))
        engine = self._engines.get(profile_name)
        if engine is None or self._engine_keys.get(profile_name) != key:
            engine = CMEngine(self.backend, self.bank, profile_name, **options)
            engine.tuning.folder = tuned_encoders_dir()
            engine.tuning.defer = True      # the UI tunes in idle time (ui.idle_tuning)
            self._engines[profile_name] = engine
            self._engine_keys[profile_name] = key
            freeze_long_lived()
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
                if self._owned:
                    self._backend.close()
            finally:
                self._backend = None
