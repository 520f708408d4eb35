"""Cancellation as a request: a worker checks the token between tokens or candidates."""

from __future__ import annotations

import threading


class Cancelled(Exception):
    """Raised inside work whose CancelToken was cancelled."""


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled (True) or until `timeout` seconds passed (False)."""
        return self._event.wait(timeout)

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


def check(token: "CancelToken | None") -> None:
    """Raise Cancelled if `token` was cancelled; a None token never cancels."""
    if token is not None and token.cancelled:
        raise Cancelled()
