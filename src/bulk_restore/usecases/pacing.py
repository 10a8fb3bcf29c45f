"""Account-wide pacing of restore requests, shared fairly among the jobs that are running.

S3 accepts about 1,000 restore requests per second per account and throttles beyond. Workers
of all jobs draw from schedules kept in DynamoDB: each job with requests left to send may issue
``rate / such jobs`` requests a second (its share), so one huge job cannot starve a small one,
and the account as a whole stays under ``rate``.

Each job's schedule is one item holding the time its next request may go (a generic cell rate
algorithm: the "theoretical arrival time"). A worker buys the time for the next requests it is
about to send (two chunks' worth: usecases/restore.py, PACING_WINDOW) with one conditional write:
``n`` requests take ``n / share`` seconds of the schedule, starting where the last buyer's
ended, or now if that is past (an idle schedule banks nothing). Then it sends them a slot's
worth (a tenth of a second's share) at a time, each slot at its place in its window, so
requests never bunch up: one write per window, however many workers share the job, where budgets
per time slot took one per tenth of a second and a refused write for each slot found full.
The same write tells the worker whether the job has ended meanwhile: ending a job marks its
schedule stopped (usecases/notify.py), so a cancel is seen within a window without a read.

The bound this gives: any sliding second holds at most a job's share plus one slot's worth of
its requests, so the account at most ``rate`` plus one slot's share per second (990 at the
default 900, under S3's 1,000).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

from bulk_restore.adapters.dynamodb import DynamoJobStore, job_schedule

ACTIVE_CACHE_SECONDS = 5.0  # how stale the count of jobs sharing the rate may be
SLOTS_PER_SECOND = 10


class Window(NamedTuple):
    """Time bought on a job's schedule: request ``i`` may go at ``start + i * spacing`` (the
    pacer's clock), none before. ``stopped``: the job has ended (usecases/notify.py wrote it on its
    schedule), and none of them should go."""

    start: float
    spacing: float
    stopped: bool = False


class Pacer:
    def __init__(
        self,
        store: DynamoJobStore,
        rate_per_second: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.store = store
        self.rate = rate_per_second
        self.clock = clock
        self.sleep = sleep
        self._issuing: tuple[float, int] = (-1e18, 1)
        self._ends: dict[str, int] = {}  # per job: where the last window this pacer bought ended (µs)

    def forget(self) -> None:
        """Count the jobs with requests to send anew at the next request, and forget the schedules seen."""
        self._issuing = (-1e18, 1)
        self._ends.clear()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def issuing_jobs(self) -> int:
        """Jobs with restore requests left to send, refreshed every 5 s. Jobs that only wait for
        S3 (every chunk accounted), finished jobs and kept ones take no share of the rate."""
        at, count = self._issuing
        if self.clock() - at > ACTIVE_CACHE_SECONDS:
            count = max(1, len(self.store.issuing_jobs()))
            self._issuing = (self.clock(), count)
        return count

    def share(self) -> int:
        return max(1, self.rate // self.issuing_jobs())

    def batch_size(self) -> int:
        """The most requests to send at once: a tenth of a second's share (at least one)."""
        share = self.share()
        return -(-share // min(SLOTS_PER_SECOND, share))

    def reserve(self, job_id: str, wanted: int) -> Window:
        """Buy the schedule's time for ``wanted`` requests of this job, in one write that also
        tells whether the job has ended since. Without a rate: now, unspaced, not stopped."""
        now = self.clock()
        if not self.enabled or wanted <= 0:
            return Window(now, 0.0)
        share = self.share()
        span = math.ceil(wanted * 1_000_000 / share)
        now_us = math.floor(now * 1_000_000)
        busy = self._ends.get(job_id, 0) > now_us  # its schedule ran ahead of now when last seen
        end, stopped = self.store.reserve_schedule(job_schedule(job_id), span, now_us, busy)
        self._ends[job_id] = end
        if len(self._ends) > 1000:
            self._ends = {job_id: end}
        return Window((end - span) / 1_000_000, 1.0 / share, stopped)

    def wait_until(self, at: float) -> None:
        pause = at - self.clock()
        if pause > 0:
            self.sleep(pause)

    def acquire(self, job_id: str, wanted: int) -> None:
        """Block until ``wanted`` restore requests of this job may start going (at their share's pace)."""
        self.wait_until(self.reserve(job_id, wanted).start)
