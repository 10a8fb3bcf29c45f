"""The local stack's AWS endpoint: moto's WSGI application behind an admission gate.

moto's backends run Python under one interpreter lock: however many connections are open, one
request computes at a time. Left alone, every connection's thread competes for that lock, and a
request waits behind all of them, a few milliseconds per turn: under a full job, a status read
took seconds. In AWS the API's own reads do not queue behind the workers' traffic.

So requests are admitted to moto ``slots`` at a time (threads parse HTTP outside the gate), in
three classes, each in arrival order:

1. requests made by the API's functions (their SDK user agent carries ``app/<API_APP_ID>``, set
   in the process that serves the API), before every other waiting request;
2. the functions' own calls, and any client's;
3. Lambda's event-source intake: its pollers' receives (``/_bulk_restore/sqs``) and a stream's
   ``GetRecords``. In AWS that reading runs in Lambda's service, beside the account's calls, not
   in their way, and nobody waits on its answer but the batch it is gathering: here it waits
   while a call is waiting. A receive left waiting gathers more messages for its batch.

Nothing is refused, and a class goes on as soon as nothing before it waits. SQS's
ReceiveMessage over SQS's API is not gated: a long poll waits inside moto for messages to arrive,
and those come from requests the gate must still admit.

A waiting request sleeps on a lock of its own, which the request leaving the gate releases: one
hand-over, no condition variable to notify.

``stats()`` counts requests and the time spent inside moto per service and operation, the figures
a slow run is read from (``bulk-restore local --endpoint-stats``).

Answers leave in one write, with Nagle's algorithm off (``keep_alive_handler``): on a kept-alive
connection an answer written as headers then body waited up to 40 ms for the client's delayed
acknowledgement. moto's list of a response class's action names is kept per class
(``install_request_savings``), not rebuilt by ``inspect.getmembers`` on every request.

``tune_interpreter()`` is for the process that holds the emulated state (``bulk-restore local``).
A request's HTTP work outside the gate takes the interpreter lock back after every socket call;
at CPython's default switch interval (5 ms) each time-back could wait 5 ms per thread ahead of it,
and the full garbage collections of a heap holding 100,000 objects' state paused every thread for
0.4 to 0.8 s, a few times a minute: measured on a 20,000-object job, a status read took 139 ms at
the median and 617 ms at p99. So the switch interval is 0.5 ms, and the survivors of each full
collection are frozen (``gc.freeze``): the next full collection looks only at what was made since,
and cycles that die young are still collected.
"""

from __future__ import annotations

import gc
import heapq
import io
import itertools
import socket
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from bulk_restore_cli.local.sqs import POLL_PATH, poll_request

API_APP_ID = "bulk-restore-api"
INTERACTIVE, BATCH, INTAKE = 0, 1, 2
INTAKE_OPERATIONS = frozenset({"amazonsqs:ReceiveMessage (poller)", "dynamodbstreams:GetRecords"})
UNGATED = frozenset({"amazonsqs:ReceiveMessage"})  # long polls wait inside moto (SQS's JSON protocol, botocore's)
SWITCH_INTERVAL = 0.0005  # seconds a thread runs before another waiting for the interpreter lock gets it


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    """After a full collection, what survived it goes to the permanent generation."""
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def tune_interpreter() -> None:
    """Short turns at the interpreter lock, and full collections that skip what survived the last."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


class AdmissionGate:
    """At most ``slots`` holders; waiting ones admitted by (class, arrival)."""

    def __init__(self, slots: int = 1):
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self.slots = slots
        self._busy = 0
        self._waiting: list[tuple[int, int, Any]] = []  # (class, arrival, the waiter's held lock)
        self._order = itertools.count()
        self._lock = threading.Lock()

    def enter(self, priority: int = BATCH) -> None:
        with self._lock:
            if self._busy < self.slots and not self._waiting:
                self._busy += 1
                return
            turn = threading.Lock()
            turn.acquire()
            heapq.heappush(self._waiting, (priority, next(self._order), turn))
        turn.acquire()  # released by leave(), which hands the slot over: _busy already counts it

    def leave(self) -> None:
        with self._lock:
            if self._waiting:
                _, _, turn = heapq.heappop(self._waiting)
                turn.release()
            else:
                self._busy -= 1

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)


def operation(environ: dict[str, Any]) -> str:
    """``service:Operation`` of a request, from its headers and path (no body read)."""
    if environ.get("PATH_INFO") == POLL_PATH:  # Lambda's pollers (local/sqs.py, ``poll_request``)
        action = environ.get("QUERY_STRING", "").rpartition("Action=")[2].split("&")[0]
        return f"amazonsqs:{action} (poller)"
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:  # JSON protocols: DynamoDB_20120810.TransactWriteItems, AmazonSQS.ReceiveMessage
        prefix, _, name = target.partition(".")
        return f"{prefix.split('_')[0].lower()}:{name}"
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    service = "?"
    marker = authorization.find("Credential=")
    if marker >= 0:
        parts = authorization[marker + 11 :].split(",", 1)[0].split("/")
        if len(parts) >= 4:
            service = parts[3]
    method = environ.get("REQUEST_METHOD", "?")
    if service == "s3":
        query = environ.get("QUERY_STRING", "")
        if "restore" in query.split("&"):
            return "s3:RestoreObject"
        return f"s3:{method}"
    return f"{service}:{method}"


class GatedApplication:
    """A WSGI application admitted through an ``AdmissionGate``, with per-operation figures."""

    def __init__(self, app: Callable[..., Iterable[bytes]], slots: int = 1):
        self.app = app
        self.gate = AdmissionGate(slots)
        self._lock = threading.Lock()
        self._figures: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])  # name -> [requests, seconds in moto, waited]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        agent = environ.get("HTTP_USER_AGENT", "")
        base = operation(environ)
        priority = INTERACTIVE if f"app/{API_APP_ID}" in agent else INTAKE if base in INTAKE_OPERATIONS else BATCH
        name = base + (" (API)" if priority == INTERACTIVE else "")
        gated = base not in UNGATED
        arrived = time.perf_counter()
        if gated:
            self.gate.enter(priority)
        admitted = time.perf_counter()
        try:
            body = b"".join(self.app(environ, start_response))  # the whole answer inside the gate: moto computes lazily
        finally:
            if gated:
                self.gate.leave()
            done = time.perf_counter()
            with self._lock:
                figures = self._figures[name]
                figures[0] += 1
                figures[1] += done - admitted
                figures[2] += admitted - arrived
        return [body]

    def stats(self) -> dict[str, dict[str, float]]:
        """Per operation, busiest first: requests, seconds inside moto, seconds waited at the gate."""
        with self._lock:
            figures = sorted(((name, tuple(f)) for name, f in self._figures.items()), key=lambda item: -item[1][1])
        return {
            name: {"requests": int(n), "seconds": round(seconds, 3), "waited_seconds": round(waited, 3)}
            for name, (n, seconds, waited) in figures
        }


def keep_alive_handler() -> type:
    """moto's request handler with HTTP/1.1 keep-alive.

    werkzeug's development server closes every connection after one answer (it reads whatever
    follows an answer to drain the request, which on a kept-alive connection would be the next
    request), so each AWS call cost a TCP connection, an accept and a thread. Here a request whose
    body has a ``Content-Length`` is read whole before the application runs and handed to it from
    memory: nothing of the connection is left to drain, and the connection stays open for the
    client's next request. A chunked body, or a client asking to close, closes as before.
    """
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class KeepAliveRequestHandler(MotoRequestHandler):  # type: ignore[misc, valid-type]
        keep_alive = False
        wbufsize = -1  # an answer's status line, headers and body leave in one write (see ``setup``)

        def setup(self) -> None:
            """No Nagle wait on this connection, and writes buffered until werkzeug flushes an answer.

            Unbuffered, an answer left as two segments (the headers, then the body); Nagle's
            algorithm held the second until the client acknowledged the first, and a client
            waiting for the body delays its acknowledgement by up to 40 ms: on a kept-alive
            connection, every answer with a body took 40 ms more than its computing (a
            ``Query`` 49 ms instead of 3 ms, measured in-process)."""
            super().setup()
            try:
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - not a TCP socket
                pass

        def run_wsgi(self) -> None:
            length = self.headers.get("Content-Length")
            chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            self.keep_alive = not chunked and (length is None or length.strip().isdigit())
            if not self.keep_alive:
                super().run_wsgi()
                return
            if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.wfile.flush()
                del self.headers["Expect"]
            body = self.rfile.read(int(length)) if length else b""
            connection = self.rfile
            self.rfile = io.BytesIO(body)
            try:
                super().run_wsgi()
            finally:
                self.rfile = connection

        def send_header(self, keyword: str, value: str) -> None:
            if self.keep_alive and keyword.lower() == "connection" and value.lower() == "close":
                return  # werkzeug's blanket close: this connection was read exactly
            super().send_header(keyword, value)

    return KeepAliveRequestHandler


def dispatcher(create_app: Callable[[str], Any]) -> Any:
    """moto's DomainDispatcherApplication, remembering which backend serves each host.

    moto finds a request's backend from the host it infers, first testing whether the host is the
    name of one of its modules, a directory listing and a ``stat`` per module on every request
    (about a fifth of a small request's time). The answer depends on the host alone, so it is kept.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    class Dispatcher(DomainDispatcherApplication):  # type: ignore[misc]
        def __init__(self, create: Callable[[str], Any]):
            super().__init__(create)
            self._backends: dict[str | None, Any] = {}

        def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            path = environ.get("PATH_INFO")
            if path == INVENTORY_PATH:
                return inventory_request(environ, start_response)
            if path == POLL_PATH:
                return poll_request(environ, start_response)
            return super().__call__(environ, start_response)

        def get_backend_for_host(self, host: str | None) -> Any:
            try:
                return self._backends[host]
            except KeyError:
                backend = super().get_backend_for_host(host)
                if len(self._backends) < 1024:
                    self._backends[host] = backend
                return backend

    return Dispatcher(create_app)


INVENTORY_PATH = "/_bulk_restore/inventory"


def inventory_request(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """POST /_bulk_restore/inventory?bucket=B&destination=D[&prefix=P][&format=CSV|Parquet][&versions=true]:
    write an S3 Inventory report of bucket B into D, in AWS's layout, as S3 would deliver it (the
    local stack's S3 never writes one by itself); answers {"manifest_key": ...}."""
    import json
    from urllib.parse import parse_qs

    from bulk_restore_cli.local.inventory import write_inventory_report

    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    status, body = "200 OK", {}
    if environ.get("REQUEST_METHOD") != "POST" or not query.get("bucket") or not query.get("destination"):
        status, body = "400 Bad Request", {"error": "POST with ?bucket=<source bucket>&destination=<bucket for the report>"}
    else:
        try:
            key = write_inventory_report(
                query["bucket"],
                query["destination"],
                query.get("prefix", "inventory"),
                file_format=query.get("format", "CSV"),
                include_versions=query.get("versions") == "true",
            )
            body = {"manifest_key": key, "bucket": query["destination"]}
        except Exception as exc:
            status, body = "400 Bad Request", {"error": f"{type(exc).__name__}: {exc}"}
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


_method_names: dict[type, tuple[tuple[int, ...], list[str]]] = {}


def _shape(cls: type) -> tuple[int, ...]:
    return tuple(len(c.__dict__) for c in cls.__mro__)


def method_names_from_class(cls: type) -> list[str]:
    """moto's ``method_names_from_class`` (the names of a response class's functions, which every
    JSON-protocol request looks its action up in), listed once per class instead of by
    ``inspect.getmembers`` on each request; listed again if a class of its MRO gains or loses an
    attribute meanwhile."""
    shape = _shape(cls)
    known = _method_names.get(cls)
    if known is not None and known[0] == shape:
        return known[1]
    names = _originals["method_names_from_class"](cls)
    _method_names[cls] = (shape, names)
    return names


_originals: dict[str, Any] = {}


def install_request_savings() -> None:
    """Per-request savings in moto's generic request handling (process-wide, idempotent)."""
    import moto.core.responses as responses

    if "method_names_from_class" not in _originals:
        _originals["method_names_from_class"] = responses.method_names_from_class
        responses.method_names_from_class = method_names_from_class


class AwsEndpoint:
    """moto's server application on ``host:port``, threaded, behind the gate."""

    def __init__(self, host: str, port: int, slots: int = 1):
        self.host, self.port, self.slots = host, port, slots
        self.application: GatedApplication | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> AwsEndpoint:
        from moto.moto_server.werkzeug_app import create_backend_app
        from werkzeug.serving import make_server

        install_request_savings()
        self.application = GatedApplication(dispatcher(create_backend_app), self.slots)
        self._server = make_server(self.host, self.port, self.application, threaded=True, request_handler=keep_alive_handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-endpoint", daemon=True)
        self._thread.start()
        return self

    def stats(self) -> dict[str, dict[str, float]]:
        return self.application.stats() if self.application else {}

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
