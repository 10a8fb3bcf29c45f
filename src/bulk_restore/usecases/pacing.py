"""Account-wide pacing of restore requests, shared fairly among the jobs that are running.

S3 accepts about 1,000 restore requests per second per account and throttles beyond. Workers
of all jobs draw from per-second budgets kept in DynamoDB: each running job may issue
``rate / running jobs`` requests a second, so one huge job cannot starve a small one, and the
account as a whole stays under ``rate``. One conditional write buys a whole chunk's requests.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from bulk_restore.adapters.dynamodb import DynamoJobStore

ACTIVE_CACHE_SECONDS = 30.0


class Pacer:
    def __init__(self, store: DynamoJobStore, rate_per_second: int, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self.store = store
        self.rate = rate_per_second
        self.clock = clock
        self.sleep = sleep
        self._active: tuple[float, int] = (-1e18, 1)

    def running_jobs(self) -> int:
        at, count = self._active
        if self.clock() - at > ACTIVE_CACHE_SECONDS:
            count = max(1, len(self.store.active_jobs()))
            self._active = (self.clock(), count)
        return count

    def share(self) -> int:
        return max(1, self.rate // self.running_jobs())

    def acquire(self, job_id: str, wanted: int) -> None:
        """Block until ``wanted`` restore requests of this job fit in the per-second budgets."""
        if self.rate <= 0:
            return
        remaining = wanted
        while remaining > 0:
            share = self.share()
            take = min(remaining, share)
            now = self.clock()
            if self.store.take_tokens(f"job#{job_id}", int(now), take, share):
                remaining -= take
                continue
            # This second's budget is spent: wait for the next one, with jitter so workers spread out.
            self.sleep(max(0.0, int(now) + 1 - now) + random.random() * 0.1)
