"""Fault injection through botocore's event hooks on the clients the services use.

A ``CallTracer`` numbers every AWS call the functions make (1, 2, 3, ...) and can crash the
function once, just before or just after call N: the request never left, or it took effect and
the function died before it could use the answer. ``SimulatedCrash`` is a BaseException, so no
``except Exception`` in the code under test can swallow it; it leaves the handler like a killed
Lambda, and the local runtime redelivers the whole batch.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CLIENT_NAMES = ("store", "s3", "queues", "publisher")


class SimulatedCrash(BaseException):
    """The function died here (timeout, out of memory, the host went away)."""


class InvocationFailed(RuntimeError):
    """What the Lambda service sees when a function dies: the invocation failed."""


# Which function invocation is running (tests run functions one at a time): calls are tagged with it.
RUNNING: dict[str, Any] = {"function": "", "invocation": 0}
_invocations = itertools.count(1)


def crash_as_invocation_error(function: str, handler: Callable[[dict, Any], Any]) -> Callable[[dict, Any], Any]:
    def invoke(event: dict, context: Any) -> Any:
        outer = dict(RUNNING)  # a test may run one function inside another's call (a race, made explicit)
        RUNNING.update(function=function, invocation=next(_invocations))
        try:
            return handler(event, context)
        except SimulatedCrash as exc:
            raise InvocationFailed(str(exc)) from exc
        finally:
            RUNNING.update(outer)

    return invoke


@dataclass
class Call:
    index: int
    operation: str  # "dynamodb.TransactWriteItems"
    params: dict[str, Any]
    function: str = ""  # the function that made the call ("" for the API, called directly)
    invocation: int = 0
    status: int | None = None
    at: float = 0.0  # when the call was made, by the tracer's clock


@dataclass
class RestoreAttempt:
    """One RestoreObject request: which object, whether a job had recorded it before, what S3 said."""

    bucket: str
    key: str
    version_id: str | None
    recorded_before: bool
    status: int | None = None


@dataclass
class CallTracer:
    crash_at: int | None = None
    phase: str = "before"  # crash "before" or "after" the call
    restore_probe: Callable[[str, str, str | None], bool] | None = None  # is this object recorded already?
    clock: Callable[[], float] = time.monotonic  # stamps each call (a test's fake clock, to check pacing)
    calls: list[Call] = field(default_factory=list)
    restores: list[RestoreAttempt] = field(default_factory=list)
    published: list[str] = field(default_factory=list)  # EventIds, in publish order
    crashed: Call | None = None
    window_events: set[str] = field(default_factory=set)  # published but not cleared when the crash hit
    _uncleared: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, services: Any) -> CallTracer:
        for name in CLIENT_NAMES:
            events = getattr(services, name).client.meta.events
            events.register("before-parameter-build.*.*", self._params)
            events.register("before-call.*.*", self._before)
            events.register("after-call.*.*", self._after)
        return self

    def count(self, operation: str) -> int:
        return sum(1 for c in self.calls if c.operation == operation)

    def of(self, operation: str, function: str | None = None) -> list[Call]:
        """The calls of one operation ("s3.HeadObject"), optionally only those of one function."""
        return [c for c in self.calls if c.operation == operation and (function is None or c.function == function)]

    # ---- hooks --------------------------------------------------------------------------------

    def _params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["tracer_params"] = dict(params)

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        params = context.get("tracer_params", {})
        with self._lock:
            call = Call(
                len(self.calls) + 1,
                f"{model.service_model.service_id.hyphenize()}.{model.name}",
                params,
                RUNNING["function"],
                RUNNING["invocation"],
                at=self.clock(),
            )
            self.calls.append(call)
        context["tracer_call"] = call
        if model.name == "RestoreObject":
            recorded = bool(self.restore_probe and self.restore_probe(params["Bucket"], params["Key"], params.get("VersionId")))
            attempt = RestoreAttempt(params["Bucket"], params["Key"], params.get("VersionId"), recorded)
            context["tracer_restore"] = attempt
            with self._lock:
                self.restores.append(attempt)
        try:
            self._maybe_crash(call, "before")
        except SimulatedCrash:
            if "tracer_restore" in context:
                self.restores.remove(context["tracer_restore"])  # never reached S3
            raise

    def _after(self, http_response: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        call: Call = context["tracer_call"]
        call.status = http_response.status_code
        if "tracer_restore" in context:
            context["tracer_restore"].status = call.status
        ok = call.status < 300
        if ok and model.name == "Publish":
            event_id = json.loads(call.params["Message"])["EventId"]
            self.published.append(event_id)
            self._uncleared.add(event_id)
        if ok and model.name == "UpdateItem" and call.params.get("UpdateExpression") == "REMOVE #o.#e":
            self._uncleared.discard(call.params["ExpressionAttributeNames"]["#e"])
        self._maybe_crash(call, "after")

    def _maybe_crash(self, call: Call, phase: str) -> None:
        if self.crashed is None and self.phase == phase and call.index == self.crash_at:
            self.crashed = call
            self.window_events = set(self._uncleared)
            raise SimulatedCrash(f"crash {phase} call {call.index} ({call.operation})")

    def committed_before_crash(self, operation: str) -> bool:
        """Whether the crashed invocation had completed ``operation`` when it died."""
        crashed = self.crashed
        if crashed is None or not crashed.invocation:
            return False
        return any(
            c.invocation == crashed.invocation
            and c.operation == operation
            and c.status is not None
            and c.status < 300
            and (c.index < crashed.index or self.phase == "after")
            for c in self.calls
        )


@dataclass
class Throttle:
    """Answer the first ``times`` calls of ``operation`` with ``code`` (HTTP ``status``, 503 unless
    told) without sending them, as S3 does when an account goes over its request rate. With
    ``match``, only calls whose parameters it accepts are answered; with ``per_key``, the first
    ``times`` calls of each object key. A CallTracer still sees these calls (its hooks run first)."""

    operation: str  # "RestoreObject"
    times: int
    code: str = "SlowDown"
    status: int = 503
    match: Callable[[dict[str, Any]], bool] | None = None
    per_key: bool = False
    answered: int = 0
    by_key: Counter = field(default_factory=Counter)  # answers per object key
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, client: Any) -> Throttle:
        client.meta.events.register(f"before-parameter-build.*.{self.operation}", self._params)
        client.meta.events.register(f"before-call.*.{self.operation}", self._answer)
        return self

    @staticmethod
    def _params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["throttle_params"] = dict(params)

    def _answer(self, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]] | None:
        params = context.get("throttle_params", {})
        if self.match is not None and not self.match(params):
            return None
        key = params.get("Key", "")
        with self._lock:
            if (self.by_key[key] if self.per_key else self.answered) >= self.times:
                return None
            self.answered += 1
            self.by_key[key] += 1
        from botocore.awsrequest import AWSResponse

        parsed = {
            "Error": {"Code": self.code, "Message": f"{self.code} (answered by the test)"},
            "ResponseMetadata": {"HTTPStatusCode": self.status, "HTTPHeaders": {}},
        }
        return AWSResponse("https://s3.amazonaws.com/", self.status, {}, None), parsed
