"""The restore worker's fan-out (usecases/fanout.py): map's results and errors, on a crew of threads."""

from __future__ import annotations

import threading
import time

import pytest

from bulk_restore.usecases.fanout import Crew


class Died(BaseException):
    """Not an Exception: as a process crash is simulated in the fault-injection tests."""


def test_results_come_in_the_items_order_while_the_calls_run_at_once() -> None:
    barrier = threading.Barrier(4, timeout=5)  # breaks unless the four calls are under way together

    def call(n: int) -> int:
        barrier.wait()
        time.sleep(0.01 * (4 - n))  # the last item ends first
        return n * n

    with Crew[int, int](4) as crew:
        assert crew.run(call, [0, 1, 2, 3]) == [0, 1, 4, 9]
        assert crew.run(lambda n: -n, list(range(25))) == [-n for n in range(25)]  # more items than threads, and a second run
        assert crew.run(call, []) == []


def test_the_first_item_s_error_in_order_is_raised_once_every_call_has_ended() -> None:
    ended: list[int] = []
    lock = threading.Lock()

    def call(n: int) -> int:
        try:
            if n == 1:
                time.sleep(0.05)  # fails after item 3 has
                raise ValueError("item 1")
            if n == 3:
                raise Died("item 3")
            time.sleep(0.02)
            return n
        finally:
            with lock:
                ended.append(n)

    with Crew[int, int](3) as crew:
        with pytest.raises(ValueError, match="item 1"):
            crew.run(call, list(range(6)))
        assert sorted(ended) == list(range(6))
        with pytest.raises(Died, match="item 3"):
            crew.run(call, [3, 4])
        assert crew.run(call, [0, 2]) == [0, 2]  # the threads outlive a raising call


def test_the_crew_s_threads_end_with_its_block_and_it_runs_only_inside_one() -> None:
    crew = Crew[int, int](2)
    with pytest.raises(RuntimeError, match="with block"):
        crew.run(lambda n: n, [1])
    with crew:
        threads = list(crew._threads)
        assert all(t.is_alive() for t in threads)
    assert not any(t.is_alive() for t in threads)
    with pytest.raises(ValueError):
        Crew[int, int](0)
