"""S3 RestoreObject as AWS documents it, patched into the moto process.

moto's RestoreObject ignores the tier and the VersionId, never answers 409, accepts a restore
without Days, and completes at once (or when the object is next read). This module replaces its
POST ?restore handler and adds a restore clock, so a local run sees what a deployed stack sees:

- ``versionId`` names the version restored (NoSuchVersion / NoSuchKey 404 if absent);
- an object in no archive (STANDARD, STANDARD_IA, GLACIER_IR, Intelligent-Tiering not archived)
  answers 403 InvalidObjectState;
- GLACIER and DEEP_ARCHIVE need Days; DEEP_ARCHIVE offers no Expedited tier; Intelligent-Tiering
  archive tiers refuse Days (400 InvalidArgument naming Days);
- a running restore answers 409 RestoreAlreadyInProgress (a faster tier is accepted with 202 and
  brings the completion forward); a restored copy answers 200 and its expiry moves; otherwise 202;
- a restore completes after a set time per (archive class, tier), on a clock thread or when a
  test calls ``tick()`` / ``complete_all()`` (running restores wait in order of their due time,
  so a tick costs the same with 100 or 1,000,000 running). ``x-amz-restore`` shows
  ``ongoing-request="true"`` until then and ``ongoing-request="false", expiry-date="..."`` after;
- ObjectRestore:Post at the start and ObjectRestore:Completed at the end go to the bucket's
  S3 notification configurations (SQS, SNS, Lambda; form-URL-encoded keys; glacierEventData on
  Completed) and, when the bucket has EventBridge on, to the default event bus as
  "Object Restore Initiated" / "Object Restore Completed", through moto's rule matching (a rule
  whose pattern names other sources or detail-types in plain lists is passed over without it; an
  event no rule can match is not made at all).

GetBucketNotificationConfiguration also reports EventBridgeConfiguration, which moto stores but
leaves out, so code that reads, amends and writes back a bucket's configuration keeps it.

Intelligent-Tiering objects count as archived when their user metadata ``archive-status`` (the
``x-amz-meta-archive-status`` header) is ARCHIVE_ACCESS or DEEP_ARCHIVE_ACCESS, or after
``set_archive_status``. HeadObject then shows ``x-amz-archive-status`` and GetObject answers 403
InvalidObjectState until a restore completes, which moves the object back to Frequent Access.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus
from xml.sax.saxutils import escape

from bulk_restore_cli.local.ticker import Ticker

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT = "123456789012"
FLEXIBLE_CLASSES = ("GLACIER",)
DEEP_CLASSES = ("DEEP_ARCHIVE",)
IT_CLASS = "INTELLIGENT_TIERING"
IT_ARCHIVE_STATUSES = ("ARCHIVE_ACCESS", "DEEP_ARCHIVE_ACCESS")
ARCHIVE_STATUS_METADATA = "x-amz-meta-archive-status"
TIERS = ("Expedited", "Standard", "Bulk")
_TIER_SPEED = {"Expedited": 0, "Standard": 1, "Bulk": 2}
_STATE_ATTR = "_bulk_restore_emulated"  # on a moto FakeKey: its _RestoreState


@dataclass(frozen=True)
class RestoreTimings:
    """Seconds a restore takes per (archive class, tier). Archive class: GLACIER, DEEP_ARCHIVE,
    ARCHIVE_ACCESS or DEEP_ARCHIVE_ACCESS (the Intelligent-Tiering archive tiers).

    The times are upper bounds, as AWS states them ("within 3-5 hours"). With ``spread`` > 0
    each restore takes a random time between (1 - spread) and 1 times its bound, so the
    restores of one job complete over a while rather than all at once.
    """

    seconds: dict[tuple[str, str], float]
    spread: float = 0.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    @classmethod
    def scaled(cls, standard_seconds: float, spread: float = 0.0, seed: int | None = None) -> RestoreTimings:
        """The real tiers' proportions, shrunk: Expedited s/5, Standard s, Bulk 2s; Deep Archive x2."""
        if not 0 <= spread <= 1:
            raise ValueError("spread must be between 0 and 1")
        base = {"Expedited": standard_seconds / 5, "Standard": float(standard_seconds), "Bulk": 2.0 * standard_seconds}
        table: dict[tuple[str, str], float] = {}
        for archive, factor in (("GLACIER", 1), ("ARCHIVE_ACCESS", 1), ("DEEP_ARCHIVE", 2), ("DEEP_ARCHIVE_ACCESS", 2)):
            for tier, seconds in base.items():
                table[(archive, tier)] = seconds * factor
        return cls(table, spread, random.Random(seed))

    def bound(self, archive: str, tier: str) -> float:
        return self.seconds.get((archive, tier), self.seconds.get(("GLACIER", tier), 0.0))

    def duration(self, archive: str, tier: str) -> float:
        return self.bound(archive, tier) * (1 - self.spread * self.rng.random())


@dataclass
class _RestoreState:
    """The emulated restore of one object version."""

    key: Any  # moto FakeKey
    bucket_name: str
    account_id: str
    partition: str
    storage_class: str  # GLACIER, DEEP_ARCHIVE or INTELLIGENT_TIERING
    archive: str  # GLACIER, DEEP_ARCHIVE, ARCHIVE_ACCESS or DEEP_ARCHIVE_ACCESS
    tier: str
    days: int | None
    started: float
    due: float
    ongoing: bool = True
    expiry: dt.datetime | None = None
    completed_at: dt.datetime | None = field(default=None)
    waiting: bool = False  # in the emulator's queue of running restores, not yet taken by a tick


class _S3Error(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: str):
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def response(self) -> tuple[int, dict[str, str], str]:
        extras = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in self.extra.items() if v is not None)
        request_id = uuid.uuid4().hex[:16].upper()
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{escape(self.message)}</Message>{extras}"
            f"<RequestId>{request_id}</RequestId><HostId>{uuid.uuid4().hex}</HostId></Error>"
        )
        return self.status, {"Content-Type": "application/xml", "x-amz-request-id": request_id}, body


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def restore_expiry(completed: dt.datetime, days: int) -> dt.datetime:
    """S3 adds Days to the completion time and rounds up to the next midnight UTC."""
    moment = completed + dt.timedelta(days=days)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight if midnight == moment else midnight + dt.timedelta(days=1)


def archive_status(key: Any) -> str | None:
    """The Intelligent-Tiering archive tier an object is in, or None (also for other classes)."""
    if key.storage_class != IT_CLASS:
        return None
    if hasattr(key, "_bulk_restore_archive_status"):
        return key._bulk_restore_archive_status or None
    value = str(key.metadata.get(ARCHIVE_STATUS_METADATA, "")).strip().upper()
    return value if value in IT_ARCHIVE_STATUSES else None


def _s3_backend(account_id: str = DEFAULT_ACCOUNT, partition: str = "aws") -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[account_id][partition]


def set_archive_status(
    bucket: str, key: str, status: str | None, version_id: str | None = None, account_id: str = DEFAULT_ACCOUNT, partition: str = "aws"
) -> None:
    """Put an Intelligent-Tiering object in an archive tier (or take it out with None)."""
    if status is not None and status not in IT_ARCHIVE_STATUSES:
        raise ValueError(f"archive status must be one of {IT_ARCHIVE_STATUSES} or None")
    obj = _s3_backend(account_id, partition).get_object(bucket, key, version_id=version_id)
    if obj is None:
        raise KeyError(f"s3://{bucket}/{key} (version {version_id}) does not exist")
    if obj.storage_class != IT_CLASS:
        raise ValueError(f"s3://{bucket}/{key} is {obj.storage_class}, not INTELLIGENT_TIERING")
    obj._bulk_restore_archive_status = status or ""


# ---- the patches ----------------------------------------------------------------------------

_lock = threading.RLock()
_installed: S3RestoreEmulator | None = None
_originals: dict[str, Any] = {}


def _patched_key_response_post(self: Any, request: Any, body: Any, bucket_name: str, query: dict[str, Any], key_name: str) -> Any:
    emulator = _installed
    if emulator is None or "restore" not in query:
        return _originals["_key_response_post"](self, request, body, bucket_name, query, key_name)
    self._set_action("KEY", "POST", query)
    self._authenticate_and_authorize_s3_action(bucket_name=bucket_name, key_name=key_name)
    raw = body.decode("utf-8") if isinstance(body, bytes) else (body or "")
    try:
        request_doc = _parse_restore_request(raw)
        if str(request_doc.get("Type", "")).upper() == "SELECT":
            return _originals["_key_response_post"](self, request, body, bucket_name, query, key_name)
        version_id = (query.get("versionId") or [None])[0]
        status = emulator.request_restore(self.backend, bucket_name, key_name, version_id, request_doc)
    except _S3Error as err:
        return err.response()
    return status, {}, ""


def _patched_get_key(self: Any, validate_storage_class: bool = True) -> Any:
    key, not_modified = _originals["_get_key"](self, validate_storage_class)
    if _installed is not None and validate_storage_class and archive_status(key):
        from moto.s3.exceptions import InvalidObjectState

        raise InvalidObjectState(storage_class=key.storage_class)
    return key, not_modified


def _patched_status_get(self: Any) -> str | None:
    state = getattr(self, _STATE_ATTR, None)
    if _installed is None or state is None:
        return _originals["status"].fget(self)
    return "IN_PROGRESS" if state.ongoing else "RESTORED"


def _patched_response_dict(self: Any) -> dict[str, Any]:
    result = _originals["response_dict"].fget(self)
    if _installed is not None:
        tier = archive_status(self)
        if tier:
            result["x-amz-archive-status"] = tier
    return result


def _patched_get_bucket_notification(self: Any) -> Any:
    """moto keeps a bucket's EventBridgeConfiguration but leaves it out of the GET: put it back."""
    status, headers, body = _originals["get_bucket_notification"](self)
    if _installed is None:
        return status, headers, body
    config = self.backend.get_bucket_notification_configuration(self.bucket_name)
    if config is not None and config.event_bridge is not None:
        text = body.decode("utf-8") if isinstance(body, bytes) else str(body)
        if "EventBridgeConfiguration" not in text and "</NotificationConfiguration>" in text:
            text = text.replace("</NotificationConfiguration>", "<EventBridgeConfiguration/></NotificationConfiguration>")
            body = text.encode("utf-8") if isinstance(body, bytes) else text
    return status, headers, body


def _parse_restore_request(raw: str) -> dict[str, Any]:
    import xmltodict

    if not raw.strip():
        raise _S3Error(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")
    try:
        doc = xmltodict.parse(raw)
    except Exception as exc:
        raise _S3Error(
            400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema"
        ) from exc
    request = doc.get("RestoreRequest") if isinstance(doc, dict) else None
    if not isinstance(request, dict):
        if request is None and isinstance(doc, dict) and "RestoreRequest" in doc:
            return {}
        raise _S3Error(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")
    return request


class S3RestoreEmulator:
    """Installs the faithful RestoreObject into moto and runs the restore clock.

    ``timings`` says how long each restore takes; ``clock`` is the time source (monotonic seconds).
    Without ``start_clock()`` restores complete only on ``tick()`` or ``complete_all()``.
    """

    def __init__(self, timings: RestoreTimings | None = None, clock: Callable[[], float] = time.monotonic):
        self.timings = timings or RestoreTimings.scaled(0)
        self.clock = clock
        self._pending: list[tuple[float, int, _RestoreState]] = []  # a heap by due time (see _queue)
        self._waiting = 0  # restores in it; a restore brought forward has a stale entry too
        self._order = itertools.count()
        self._clock = Ticker("s3-restore-clock", self.tick, join_timeout=5)
        self._sequence = itertools.count(int(time.time() * 1000))
        self.completed = 0

    # ---- installation ----------------------------------------------------------------------

    def install(self) -> S3RestoreEmulator:
        """Patch moto (idempotent). Only one emulator can be installed at a time."""
        global _installed
        with _lock:
            if _installed is self:
                return self
            if _installed is not None:
                raise RuntimeError("another S3RestoreEmulator is installed: uninstall it first")
            from moto.s3.models import FakeKey
            from moto.s3.responses import S3Response

            _originals.update(
                _key_response_post=S3Response._key_response_post,
                _get_key=S3Response._get_key,
                get_bucket_notification=S3Response.get_bucket_notification,
                status=FakeKey.__dict__["status"],
                response_dict=FakeKey.__dict__["response_dict"],
            )
            S3Response._key_response_post = _patched_key_response_post
            S3Response._get_key = _patched_get_key
            S3Response.get_bucket_notification = _patched_get_bucket_notification
            FakeKey.status = property(_patched_status_get, _originals["status"].fset)
            FakeKey.response_dict = property(_patched_response_dict)
            _installed = self
        return self

    def uninstall(self) -> None:
        """Stop the clock and put moto back as it was (idempotent)."""
        global _installed
        self.stop_clock()
        with _lock:
            if _installed is not self:
                return
            from moto.s3.models import FakeKey
            from moto.s3.responses import S3Response

            S3Response._key_response_post = _originals["_key_response_post"]
            S3Response._get_key = _originals["_get_key"]
            S3Response.get_bucket_notification = _originals["get_bucket_notification"]
            FakeKey.status = _originals["status"]
            FakeKey.response_dict = _originals["response_dict"]
            # _originals stays filled: a request already inside a patched method still finds them.
            _installed = None
            for state in self._take(math.inf):
                if getattr(state.key, _STATE_ATTR, None) is state:
                    delattr(state.key, _STATE_ATTR)

    @property
    def installed(self) -> bool:
        return _installed is self

    def __enter__(self) -> S3RestoreEmulator:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    # ---- the clock -------------------------------------------------------------------------

    def start_clock(self, interval: float = 0.1) -> None:
        """Complete due restores in a background thread every ``interval`` seconds."""
        self._clock.start(interval)

    def stop_clock(self) -> None:
        self._clock.stop()

    def pending(self) -> int:
        """Restores still running."""
        with _lock:
            return self._waiting

    def due_times(self) -> list[float]:
        """When the running restores are due, soonest first."""
        with _lock:
            return sorted(when for when, _, state in self._pending if state.waiting and when == state.due)

    def tick(self, now: float | None = None) -> int:
        """Complete every restore that is due, soonest first. Returns how many completed."""
        moment = self.clock() if now is None else now
        with _lock:
            due = self._take(moment)
        for state in due:
            self._complete(state)
        return len(due)

    def complete_all(self) -> int:
        """Complete every running restore now, due or not. Returns how many completed."""
        with _lock:
            due = self._take(math.inf)
        for state in due:
            self._complete(state)
        return len(due)

    def _queue(self, state: _RestoreState) -> None:
        """Queue (or queue again, when it was brought forward) a running restore by its due time. Under _lock."""
        if not state.waiting:
            state.waiting = True
            self._waiting += 1
        heapq.heappush(self._pending, (state.due, next(self._order), state))

    def _take(self, moment: float) -> list[_RestoreState]:
        """The queued restores due by ``moment``, out of the queue, in order of due time. Under _lock.
        An entry whose due time is no longer its restore's was left by bringing it forward."""
        due: list[_RestoreState] = []
        while self._pending and self._pending[0][0] <= moment:
            when, _, state = heapq.heappop(self._pending)
            if state.waiting and when == state.due:
                state.waiting = False
                due.append(state)
        self._waiting -= len(due)
        return due

    # ---- RestoreObject ---------------------------------------------------------------------

    def request_restore(self, backend: Any, bucket_name: str, key_name: str, version_id: str | None, request: dict[str, Any]) -> int:
        """Handle one RestoreObject call. Returns 200 or 202, or raises _S3Error."""
        from moto.s3.exceptions import MissingBucket

        try:
            bucket = backend.get_bucket(bucket_name)
        except MissingBucket as exc:
            raise _S3Error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=bucket_name) from exc
        key = backend.get_object(bucket_name, key_name, version_id=version_id)
        if key is None:
            if version_id is not None:
                raise _S3Error(404, "NoSuchVersion", "The specified version does not exist.", Key=key_name, VersionId=version_id)
            raise _S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=key_name)

        storage_class = key.storage_class or "STANDARD"
        if storage_class in FLEXIBLE_CLASSES or storage_class in DEEP_CLASSES:
            archive = storage_class
        elif storage_class == IT_CLASS and archive_status(key):
            archive = str(archive_status(key))
        else:
            raise _S3Error(
                403, "InvalidObjectState", "Restore is not allowed for the object's current storage class", StorageClass=storage_class
            )

        tier = self._tier(request)
        days = self._days(request, archive)
        if tier == "Expedited" and archive in ("DEEP_ARCHIVE", "DEEP_ARCHIVE_ACCESS"):
            raise _S3Error(
                400,
                "InvalidArgument",
                f"Expedited retrieval is not available for objects in {archive}",
                ArgumentName="Tier",
                ArgumentValue=tier,
            )

        with _lock:
            state: _RestoreState | None = getattr(key, _STATE_ATTR, None)
            now = self.clock()
            if state is not None and state.ongoing:
                if _TIER_SPEED[tier] < _TIER_SPEED[state.tier]:
                    # A faster tier over a running restore: S3 accepts it and the object comes sooner.
                    state.tier = tier
                    sooner = now + self.timings.duration(archive, tier)
                    if sooner < state.due and state.waiting:
                        state.due = sooner
                        self._queue(state)
                    return 202
                raise _S3Error(409, "RestoreAlreadyInProgress", "Object restore is already in progress")
            if archive in FLEXIBLE_CLASSES + DEEP_CLASSES and (state is not None or key._expiry is not None):
                # A restored copy exists: only its expiry moves.
                assert days is not None
                key._expiry = restore_expiry(_utcnow(), days)
                if state is not None:
                    state.days, state.expiry = days, key._expiry
                return 200
            state = _RestoreState(
                key=key,
                bucket_name=bucket_name,
                account_id=key.account_id,
                partition=key.partition,
                storage_class=storage_class,
                archive=archive,
                tier=tier,
                days=days,
                started=now,
                due=now + self.timings.duration(archive, tier),
            )
            setattr(key, _STATE_ATTR, state)
            # With an expiry set, moto's x-amz-restore header appears; our status says "ongoing".
            key._expiry = restore_expiry(_utcnow(), days or 1)
            self._queue(state)
        self._notify("s3:ObjectRestore:Post", bucket, state)
        return 202

    @staticmethod
    def _tier(request: dict[str, Any]) -> str:
        params = request.get("GlacierJobParameters") or {}
        value = (params.get("Tier") if isinstance(params, dict) else None) or request.get("Tier") or "Standard"
        if value not in TIERS:
            raise _S3Error(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")
        return str(value)

    @staticmethod
    def _days(request: dict[str, Any], archive: str) -> int | None:
        raw = request.get("Days")
        if archive in IT_ARCHIVE_STATUSES:
            if raw is not None:
                raise _S3Error(
                    400,
                    "InvalidArgument",
                    "Days is not allowed for the restore of an object in an Intelligent-Tiering archive tier",
                    ArgumentName="Days",
                    ArgumentValue=str(raw),
                )
            return None
        if raw is None:
            raise _S3Error(400, "InvalidArgument", f"Days is required to restore an object in {archive}", ArgumentName="Days")
        try:
            days = int(str(raw))
        except ValueError as exc:
            raise _S3Error(
                400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema"
            ) from exc
        if days < 1:
            raise _S3Error(400, "InvalidArgument", "Days must be a positive integer", ArgumentName="Days", ArgumentValue=str(raw))
        return days

    def _complete(self, state: _RestoreState) -> None:
        key = state.key
        with _lock:
            if getattr(key, _STATE_ATTR, None) is not state or not state.ongoing:
                return
            try:
                bucket = _s3_backend(state.account_id, state.partition).get_bucket(state.bucket_name)
            except Exception:
                delattr(key, _STATE_ATTR)
                return
            if not any(version is key for version in bucket.keys.getlist(key.name, default=[])):
                delattr(key, _STATE_ATTR)  # the version was deleted or overwritten meanwhile
                return
            state.ongoing = False
            state.completed_at = _utcnow()
            if state.archive in IT_ARCHIVE_STATUSES:
                # Intelligent-Tiering: the object moves back to Frequent Access; no temporary copy.
                key._bulk_restore_archive_status = ""
                key._expiry = None
                state.expiry = None
            else:
                state.expiry = restore_expiry(state.completed_at, state.days or 1)
                key._expiry = state.expiry
            self.completed += 1
        self._notify("s3:ObjectRestore:Completed", bucket, state)

    # ---- events ----------------------------------------------------------------------------

    def _sequencer(self) -> str:
        return f"{next(self._sequence):016X}"

    def _notify(self, event_name: str, bucket: Any, state: _RestoreState) -> None:
        """Send the event to the bucket's notification configurations and to EventBridge."""
        from moto.s3 import notifications as moto_notifications

        config = bucket.notification_configuration
        if config is None:
            return
        key, sequencer = state.key, self._sequencer()
        targets = (
            (config.cloud_function, moto_notifications._invoke_awslambda),
            (config.queue, None),
            (config.topic, moto_notifications._send_sns_message),
        )
        for notifications, send in targets:
            for notification in notifications:
                if not notification.matches(event_name, key.name):
                    continue
                body = s3_event_record(event_name, bucket, state, notification.id, sequencer)
                region = notification.arn.split(":")[3]
                try:
                    if send is None:
                        moto_notifications._send_sqs_message(state.account_id, body, notification.arn.split(":")[-1], region)
                    else:
                        send(state.account_id, body, notification.arn, region)
                except Exception:
                    log.exception("S3 notification not delivered", extra={"arn": notification.arn})
        if config.event_bridge is not None:
            try:
                self._send_event_bridge(event_name, bucket, state, sequencer)
            except Exception:
                log.exception("EventBridge event not delivered")

    def _send_event_bridge(self, event_name: str, bucket: Any, state: _RestoreState, sequencer: str) -> None:
        from moto.core.utils import unix_time
        from moto.events.models import events_backends

        bus = events_backends[state.account_id][bucket.region_name].event_buses.get("default")
        if bus is None:
            return
        detail_type = EVENTBRIDGE_DETAIL_TYPES[event_name.endswith("ObjectRestore:Completed")]
        rules = [
            rule
            for rule in list(bus.rules.values())
            if getattr(rule, "state", "ENABLED") == "ENABLED" and may_match(rule, "aws.s3", detail_type)
        ]
        if not rules:
            return  # no rule of the bus can match: the event is not even made
        event = eventbridge_event(event_name, bucket, state, sequencer)
        event["time"] = unix_time()  # moto's SQS target turns this into ISO 8601
        for rule in rules:
            rule.send_to_targets(dict(event), transform_input=False)


EVENTBRIDGE_DETAIL_TYPES = ("Object Restore Initiated", "Object Restore Completed")


def may_match(rule: Any, source: str, detail_type: str) -> bool:
    """False when ``rule``'s event pattern cannot match an event of this source and detail-type
    (then moto's matching would say no too): its ``source`` or ``detail-type`` is a list of plain
    strings without the event's value. Anything else (no pattern, other filters, ``$or``) is left
    to moto's matching, which runs on every rule this lets through. An S3 restore sends two
    events per object and a stack's bus has several rules, most for other detail-types: moto
    serialises, parses and flattens the event once per rule to find that out."""
    pattern = getattr(getattr(rule, "event_pattern", None), "_pattern", None)
    if not isinstance(pattern, dict):
        return True
    for name, value in (("source", source), ("detail-type", detail_type)):
        allowed = pattern.get(name)
        if isinstance(allowed, list) and allowed and all(type(f) is str for f in allowed) and value not in allowed:
            return False
    return True


def _iso_ms(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def s3_event_record(event_name: str, bucket: Any, state: _RestoreState, configuration_id: str, sequencer: str) -> dict[str, Any]:
    """An S3 event notification, as S3 sends it: the key form-URL-encoded ("a b+c" -> "a+b%2Bc")."""
    key = state.key
    obj: dict[str, Any] = {
        "key": quote_plus(key.name, safe="/"),
        "size": key.size,
        "eTag": key.etag.replace('"', ""),
        "sequencer": sequencer,
    }
    if key._is_versioned:
        obj["versionId"] = key.version_id
    record: dict[str, Any] = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": bucket.region_name,
        "eventTime": _iso_ms(_utcnow()),
        "eventName": event_name.removeprefix("s3:"),
        "userIdentity": {"principalId": "AmazonCustomer:LOCAL"},
        # A completion is S3's own doing; the initiation was the caller's.
        "requestParameters": {"sourceIPAddress": "s3.amazonaws.com" if event_name.endswith("Completed") else "127.0.0.1"},
        "responseElements": {"x-amz-request-id": uuid.uuid4().hex[:16].upper(), "x-amz-id-2": uuid.uuid4().hex},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {"name": bucket.name, "ownerIdentity": {"principalId": "LOCAL"}, "arn": bucket.arn},
            "object": obj,
        },
    }
    if event_name.endswith("ObjectRestore:Completed"):
        record["glacierEventData"] = {
            "restoreEventData": {
                "lifecycleRestorationExpiryTime": _iso_ms(state.expiry) if state.expiry else None,
                "lifecycleRestoreStorageClass": state.storage_class,
            }
        }
    return {"Records": [record]}


def eventbridge_event(event_name: str, bucket: Any, state: _RestoreState, sequencer: str) -> dict[str, Any]:
    """An S3 event on EventBridge: the key as it is, not encoded."""
    key = state.key
    completed = event_name.endswith("ObjectRestore:Completed")
    obj: dict[str, Any] = {"key": key.name, "size": key.size, "etag": key.etag.replace('"', "")}
    if key._is_versioned:
        obj["version-id"] = key.version_id
    detail: dict[str, Any] = {"version": "0", "bucket": {"name": bucket.name}, "object": obj, "request-id": uuid.uuid4().hex[:16].upper()}
    if completed:
        detail["requester"] = "s3.amazonaws.com"
        if state.expiry is not None:
            detail["restore-expiry-time"] = state.expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        obj["sequencer"] = sequencer
        detail["requester"] = state.account_id
        detail["source-ip-address"] = "127.0.0.1"
    detail["source-storage-class"] = state.storage_class
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": EVENTBRIDGE_DETAIL_TYPES[completed],
        "source": "aws.s3",
        "account": state.account_id,
        "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": bucket.region_name,
        "resources": [bucket.arn],
        "detail": detail,
    }
