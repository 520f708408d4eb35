"""The cyclic garbage collector paused while a bulk add or import builds its ratings.

A 100k-rating add or import allocates hundreds of thousands of tuples and strings that hold no
cycles; the collector's passes over them took 0.2-0.5 s of a ~3 s insert (measured with the
collector on and off in the same process, benchmarks/RESULTS.md), and a full pass holds the GIL
while the GUI thread waits. Reference counting still frees everything; cycles made elsewhere
meanwhile are collected when the pause ends. Nested and concurrent pauses are counted: the
collector comes back when the last one ends, and only if it was on before the first.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Iterator

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
