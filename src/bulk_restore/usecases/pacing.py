"""Account-wide pacing of restore requests, shared fairly among the jobs that are running.

S3 accepts about 1,000 restore requests per second per account and throttles beyond. Workers
of all jobs draw from budgets kept in DynamoDB: each job with requests left to send may issue
``rate / such jobs`` requests a second, so one huge job cannot starve a small one, and the account as a whole
stays under ``rate``. The budgets are per tenth of a second, not per second: S3 counts any
sliding second, and whole-second budgets let a burst at the end of one second and another at
the start of the next overrun it. One conditional write buys up to a tenth of a second's share;
when the slot has less room than asked, the worker takes what is left and waits for the next.

The bound this gives: any sliding second holds at most ``rate`` plus one slot's share (a
sliding second can touch eleven tenth-second slots): 990 at the default 900, under S3's 1,000.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from bulk_restore.adapters.dynamodb import DynamoJobStore

ACTIVE_CACHE_SECONDS = 5.0  # how stale the count of jobs sharing the rate may be
SLOTS_PER_SECOND = 10


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

    def forget(self) -> None:
        """Count the jobs with requests to send anew at the next request."""
        self._issuing = (-1e18, 1)

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

    def _slots(self, share: int) -> int:
        return min(SLOTS_PER_SECOND, share)  # at least one request per slot

    def batch_size(self) -> int:
        """The most requests one slot allows: send no more than this at once."""
        share = self.share()
        return -(-share // self._slots(share))

    def acquire(self, job_id: str, wanted: int) -> None:
        """Block until ``wanted`` restore requests of this job fit in its budgets."""
        remaining = wanted
        while remaining > 0:
            remaining -= self.take(job_id, remaining)

    def take(self, job_id: str, wanted: int) -> int:
        """Block until this job may send at least one request; return how many (up to ``wanted``)
        it may send now. Send them at once: they are this slot's."""
        if not self.enabled:
            return wanted
        while True:
            share = self.share()
            slots = self._slots(share)
            now = self.clock()
            slot = int(now * slots)
            # The share spread over the slots of a second, the remainder too: slot i gets its part.
            i = slot % slots
            room = share * (i + 1) // slots - share * i // slots
            granted = self.store.take_tokens(f"job#{job_id}/{slots}", slot, min(wanted, room), room)
            if granted:
                return granted
            # This slot's budget is spent: wait for the next one, with jitter so workers spread out.
            self.sleep(max(0.0, (slot + 1) / slots - now) + random.random() / slots / 4)
