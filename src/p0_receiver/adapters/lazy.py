"""Values built once, on first use or on a background thread: the Google clients of a process.

Building a client costs an import of its library and a connection; a function instance pays it
once, off the request path where it can (``build_after_fork``), and every request thread that
comes first waits for the same build.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from p0_receiver.core.errors import ReceiverError


class Lazy[T]:
    """Builds a value on first call, once, even when many request threads race for it."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
        return self._value

    def build_in_background(
        self,
        on_failure: Callable[[ReceiverError], None],
        on_ready: Callable[[float], None] = lambda _: None,
    ) -> None:
        """Start building now on a daemon thread; a request that comes first waits for it.

        A deliberate failure (``ReceiverError``) is reported and left for the next call to
        retry; anything else is a bug and surfaces on the request path as one. ``on_ready``
        gets the seconds the build took.
        """

        def build() -> None:
            started = time.perf_counter()
            try:
                self()
            except ReceiverError as failure:
                on_failure(failure)
            else:
                on_ready(time.perf_counter() - started)

        threading.Thread(target=build, name="warm-up", daemon=True).start()

    def build_after_fork(
        self,
        on_failure: Callable[[ReceiverError], None],
        on_ready: Callable[[float], None] = lambda _: None,
    ) -> None:
        """Build in the background in every process forked from this one, never in this one.

        functions-framework imports main.py in gunicorn's master and then forks the workers:
        a thread or a gRPC channel started before the fork would be copied half-way (a held
        lock, a dead thread), so each worker warms up its own clients right after the fork.
        """
        os.register_at_fork(after_in_child=lambda: self.build_in_background(on_failure, on_ready))
