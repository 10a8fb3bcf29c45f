"""Calls fanned out on a few threads, at the cost of two queue hand-offs per call."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Generic, TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")


class Crew(Generic[_T, _R]):
    """``threads`` threads that run the calls handed to them while the ``with`` block lasts.

    ``run(call, items)`` gives what ``list(map(call, items))`` gives, with the calls on the crew's
    threads. When calls raise, every call handed out still ends; then the exception of the first
    item (in order) that raised is raised, whatever its kind (``BaseException`` included), as
    ``ThreadPoolExecutor.map`` would raise it. A restore worker makes a call per object: the
    executor made a ``Future`` for each (a ``Condition``, its lock, and a notify to wake the
    caller), which was a twentieth of the function's CPU; here a call costs two puts and two gets
    of ``queue.SimpleQueue`` (written in C).
    """

    def __init__(self, threads: int):
        if threads < 1:
            raise ValueError("a crew has at least one thread")
        self._inbox: queue.SimpleQueue[tuple[Callable[[Any], Any], Any, int, queue.SimpleQueue[Any]] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"crew-{n}", daemon=True) for n in range(threads)]
        self._started = False

    def __enter__(self) -> Crew[_T, _R]:
        for thread in self._threads:
            thread.start()
        self._started = True
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        for _ in self._threads:
            self._inbox.put(None)
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while True:
            task = self._inbox.get()
            if task is None:
                return
            call, item, index, done = task
            try:
                done.put((index, True, call(item)))
            except BaseException as error:  # handed to the caller, which raises it
                done.put((index, False, error))

    def run(self, call: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        if not self._started:
            raise RuntimeError("use the crew in a with block")
        done: queue.SimpleQueue[tuple[int, bool, Any]] = queue.SimpleQueue()
        for index, item in enumerate(items):
            self._inbox.put((call, item, index, done))
        results: list[Any] = [None] * len(items)
        failures: dict[int, BaseException] = {}
        for _ in items:
            index, ok, value = done.get()
            if ok:
                results[index] = value
            else:
                failures[index] = value
        if failures:
            raise failures[min(failures)]
        return results
