"""A clock for code that takes ``clock`` and ``sleep`` callables (the pacer, the sweeper): it
starts at the real time and moves only when slept on or advanced, so hours pass in a test at once
and every timestamp taken from it is exact."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class SteppingClock:
    now: float = field(default_factory=time.time)
    slept: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def time(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
