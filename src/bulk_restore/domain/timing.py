"""How long restores take, when to look for lost events, and when a job has run out of time.

Typical completion times from the S3 user guide (restoring-objects-retrieval-options). A job
does not know each object's storage class (RestoreObject does not say), so its window is the
slowest class its tier can reach: Expedited only reaches Flexible Retrieval and the
Intelligent-Tiering Archive Access tier; Standard and Bulk also reach Deep Archive.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bulk_restore.domain.model import Tier

HOUR = 3600.0

# (storage class, tier) -> typical upper bound in seconds
EXPECTED_SECONDS: dict[tuple[str, Tier], float] = {
    ("GLACIER", Tier.EXPEDITED): 5 * 60,
    ("GLACIER", Tier.STANDARD): 5 * HOUR,
    ("GLACIER", Tier.BULK): 12 * HOUR,
    ("DEEP_ARCHIVE", Tier.STANDARD): 12 * HOUR,
    ("DEEP_ARCHIVE", Tier.BULK): 48 * HOUR,
    ("INTELLIGENT_TIERING_ARCHIVE", Tier.EXPEDITED): 5 * 60,
    ("INTELLIGENT_TIERING_ARCHIVE", Tier.STANDARD): 5 * HOUR,
    ("INTELLIGENT_TIERING_ARCHIVE", Tier.BULK): 12 * HOUR,
    ("INTELLIGENT_TIERING_DEEP_ARCHIVE", Tier.STANDARD): 12 * HOUR,
    ("INTELLIGENT_TIERING_DEEP_ARCHIVE", Tier.BULK): 48 * HOUR,
}

DEADLINE_FACTOR = 2.0  # a job times out when twice the slowest expected window has passed
DEADLINE_SLACK = 1 * HOUR


def expected_window(tier: Tier, scale: float = 1.0) -> float:
    """Seconds after which a restore of this tier should have completed, whatever the class."""
    return max(seconds for (_, t), seconds in EXPECTED_SECONDS.items() if t is tier) * scale


def default_deadline(tier: Tier, scale: float = 1.0) -> float:
    """Seconds after a job's restores were requested when it gives up waiting: Timeout."""
    return (expected_window(tier) * DEADLINE_FACTOR + DEADLINE_SLACK) * scale


def event_epoch(stamp: str) -> float | None:
    """Seconds since the epoch of an event's time (ISO 8601, "2026-03-02T10:15:08.000Z", or a
    number of seconds), or None if it has none we can read."""
    if not stamp:
        return None
    try:
        return float(stamp)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # the stored times: UTC, microseconds, so they sort as text


def parse_time(stamp: str) -> datetime:
    return datetime.strptime(stamp, TIME_FORMAT)


def due(started: str, seconds: float, now: datetime) -> bool:
    return bool(started) and now >= parse_time(started) + timedelta(seconds=seconds)
