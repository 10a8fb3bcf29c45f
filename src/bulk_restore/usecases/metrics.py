"""What the use cases count for operators: the metrics port, its names, and a no-op default.

The use cases call ``metrics.add(name, value)`` where something countable happens; how it is
published is the adapter's business (``bulk_restore.adapters.metrics``: CloudWatch embedded
metric format through Powertools, flushed at the end of each invocation). Without one, nothing
is counted (``NO_METRICS``), so a use case built without metrics works as before.

Each count is taken where the thing happens once: objects when their chunk's transaction
commits (a repeated delivery commits nothing), completions when the RESTORING -> RESTORED
transition moved them, a job's end when its one terminal event is published.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from bulk_restore.domain.model import ObjectState

# Objects whose restore was asked for and accepted: S3 answered 202, 200 (a copy existed) or 409
# (already restoring), a Batch Operations job will ask, or a vault archive was recorded for retrieval.
RESTORES_REQUESTED = "RestoresRequested"
# Objects that became RESTORED: a completion event, the sweeper's HeadObject, S3 answering 200 at
# the request (a copy was there), a vault archive stored.
RESTORES_COMPLETED = "RestoresCompleted"
# Objects that became FAILED: at the request, a bad manifest line, a Batch task, a vault transfer.
RESTORES_FAILED = "RestoresFailed"
# Objects that became SKIPPED: not in an archive storage class, readable now.
RESTORES_SKIPPED = "RestoresSkipped"
# Throttling answers (SlowDown, 503) to RestoreObject or HeadObject, each retried with backoff.
RESTORES_THROTTLED = "RestoresThrottled"
# Jobs that ended, with a State dimension: Complete, Failed, Timeout or Cancelled.
JOBS_ENDED = "JobsEnded"
# Bytes of vault archives stored in S3 (each archive once, when its upload is complete).
BYTES_MOVED = "BytesMoved"

COUNT = "Count"
BYTES = "Bytes"


class Metrics(Protocol):
    """Where the use cases count. ``dimensions``: a few low-cardinality ones (a state, never a job id)."""

    def add(self, name: str, value: float, unit: str = COUNT, **dimensions: str) -> None: ...


class NoMetrics:
    """Counts nothing: the default of every use case."""

    def add(self, name: str, value: float, unit: str = COUNT, **dimensions: str) -> None:
        return None


NO_METRICS: Metrics = NoMetrics()

_BY_STATE = {
    ObjectState.RESTORING: (RESTORES_REQUESTED,),
    # S3 answered 200 at the request: a copy was there already, requested and completed at once
    ObjectState.RESTORED: (RESTORES_REQUESTED, RESTORES_COMPLETED),
    ObjectState.FAILED: (RESTORES_FAILED,),
    ObjectState.SKIPPED: (RESTORES_SKIPPED,),
}


def count_recorded(metrics: Metrics, states: Iterable[ObjectState]) -> None:
    """Count the objects a chunk recorded, by the state each was recorded in (CANCELLED: not counted)."""
    totals: dict[str, int] = {}
    for state in states:
        for name in _BY_STATE.get(state, ()):
            totals[name] = totals.get(name, 0) + 1
    for name, value in totals.items():
        metrics.add(name, value)


def count_moved(metrics: Metrics, state: ObjectState, moved: int) -> None:
    """Count objects a transition moved to ``state`` (RESTORED, FAILED or SKIPPED; others: nothing)."""
    name = {ObjectState.RESTORED: RESTORES_COMPLETED, ObjectState.FAILED: RESTORES_FAILED, ObjectState.SKIPPED: RESTORES_SKIPPED}.get(state)
    if name is not None and moved:
        metrics.add(name, moved)


def count_stored(metrics: Metrics, size: int) -> None:
    """Count a vault archive stored in S3: one restore completed, its bytes moved."""
    metrics.add(RESTORES_COMPLETED, 1)
    metrics.add(BYTES_MOVED, size, BYTES)
