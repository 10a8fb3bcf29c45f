"""A background thread that calls an emulation's ``tick`` every so often (its clock)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Ticker:
    """Calls ``tick`` every ``interval`` seconds in a daemon thread named ``name``, until stopped;
    a failing tick is logged and the clock goes on."""

    def __init__(self, name: str, tick: Callable[[], object], join_timeout: float = 10.0):
        self.name, self.tick, self.join_timeout = name, tick, join_timeout
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, interval: float) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.tick()
                except Exception:
                    log.exception("%s tick failed", self.name)

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.join_timeout)
            self._thread = None
