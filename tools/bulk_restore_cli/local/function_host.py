"""The local stack's functions in processes of their own, as Lambda runs them apart from AWS.

`bulk-restore local` serves the AWS endpoint (moto, with our S3, DynamoDB and SQS layers) in
its own process; its event sources and schedules (the planner, the restore workers, the
completion function, the counter on the table's stream, the sweeper) run in a second process,
and the REST API with its function in a third, each started from this module and reaching AWS
only through the endpoint, as deployed functions do. Python runs one thread at a time per
process: with all in one, the functions' own work (building, signing and reading every AWS
request) and the endpoint's answering it took turns on one core, while the other core idled.

The parent starts this module with a JSON spec on standard input (what ``spec`` makes) and
stops it with SIGTERM; it writes one line, "ready", on standard output once its pollers run.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from bulk_restore_cli.local.lambda_runtime import (
    DynamoDBStreamEventSource,
    EndpointSqs,
    Poller,
    Scheduler,
    ScheduleSource,
    SqsEventSource,
    StreamPoller,
    load_handler,
)

log = logging.getLogger("bulk_restore_cli.local")

STOP_GRACE_SECONDS = 2.5  # an invocation still running then ends with the process
# What a DynamoDB stream source is made of, as JSON (its clock stays the process's own).
STREAM_FIELDS = (
    "function_name",
    "handler",
    "stream_arn",
    "starting_position",
    "batch_size",
    "window_seconds",
    "bisect_on_error",
    "max_retry_attempts",
    "max_record_age_seconds",
    "report_failures",
    "on_failure",
    "filter_patterns",
    "tumbling_window_seconds",
    "parallelization_factor",
    "timeout_s",
    "retry_delay",
    "region",
    "poll_seconds",
)


def spec(
    sources: list[SqsEventSource],
    schedules: list[ScheduleSource],
    environment: dict[str, str],
    endpoint_url: str,
    region: str,
    code_paths: list[str],
    api: dict[str, Any] | None = None,
    streams: list[DynamoDBStreamEventSource] | None = None,
) -> dict[str, Any]:
    """What the function process needs, as JSON: handlers by their "module.function" path; ``api``:
    the REST API to serve (``LocalStack._api_spec``); ``streams``: the DynamoDB stream sources."""
    return {
        "api": api,
        "environment": environment,
        "endpoint_url": endpoint_url,
        "region": region,
        "code_paths": code_paths,
        "sources": [
            {
                "function_name": s.function_name,
                "handler": s.handler,
                "queue_url": s.queue_url,
                "queue_arn": s.queue_arn,
                "batch_size": s.batch_size,
                "window_seconds": s.window_seconds,
                "report_failures": s.report_failures,
                "timeout_s": s.timeout_s,
                "retry_delay": s.retry_delay,
                "region": s.region,
                "max_concurrency": s.max_concurrency,
            }
            for s in sources
        ],
        "streams": [{name: getattr(s, name) for name in STREAM_FIELDS} for s in streams or []],
        "schedules": [
            {
                "function_name": s.function_name,
                "handler": s.handler,
                "every_seconds": s.every_seconds,
                "timeout_s": s.timeout_s,
                "region": s.region,
                "input": s.input,
            }
            for s in schedules
        ],
    }


def start_functions(
    sources: list[SqsEventSource],
    schedules: list[ScheduleSource],
    sqs: Any,
    stop: threading.Event,
    streams: list[DynamoDBStreamEventSource] | None = None,
    clients: Any = None,
) -> tuple[list[Poller | StreamPoller], Scheduler | None]:
    """Run the event sources' pollers and the schedules, in this process's threads, until ``stop``.

    ``sqs`` makes an SQS client for a poller; ``clients`` makes a client for a service name (a
    DynamoDB stream poller's ``dynamodbstreams``, and its OnFailure destination's ``sqs`` or ``sns``).
    The local stack calls this in its own process, or the function process does (``serve``).
    """
    from bulk_restore import wiring

    wiring.services()  # the functions' clients, made once before the pollers race for them
    pollers: list[Poller | StreamPoller] = []
    for source in sources:
        source.handler = _logged(source.handler, source.function_name)
        # A source scaled to a MaximumConcurrency (the restore workers, each with its own thread
        # pool) gives each invocation thread an execution environment of its own (clients,
        # connection pools), as in Lambda; the others share the process's.
        own = wiring.services.own_environment if source.max_concurrency else None

        def report(exc: Exception, name: str = source.function_name) -> None:
            log.error("event source of %s failed to poll: %s", name, exc)

        pollers.append(Poller(source, sqs(), stop, on_error=report, environment=own))
    for stream in streams or []:
        if clients is None:
            raise ValueError("DynamoDB stream sources need ``clients``")
        stream.handler = _logged(stream.handler, stream.function_name)
        destination = (stream.on_failure or "").split(":")[2:3]

        def report_stream(exc: Exception, name: str = stream.function_name) -> None:
            log.error("stream event source of %s failed to poll: %s", name, exc)

        pollers.append(
            StreamPoller(
                stream,
                clients("dynamodbstreams"),
                stop,
                sqs=clients("sqs") if destination == ["sqs"] else None,
                sns=clients("sns") if destination == ["sns"] else None,
                on_error=report_stream,
            )
        )
    for poller in pollers:
        poller.start()
    scheduler = None
    if schedules:
        scheduler = Scheduler(
            schedules,
            stop,
            on_error=lambda exc: log.error("scheduled run failed: %s", exc),
            on_skip=lambda source: log.info("%s: previous scheduled run still going, this one skipped", source.function_name),
        )
        scheduler.start()
    return pollers, scheduler


def _logged(handler: Any, function_name: str) -> Any:
    """The handler, logging each invocation's batch size and partial failures."""

    def invoke(event: dict[str, Any], context: Any) -> Any:
        records = len(event.get("Records") or [])
        result = handler(event, context)
        failures = len((result or {}).get("batchItemFailures") or []) if isinstance(result, dict) else 0
        log.info("%s: %d record(s)%s", function_name, records, f", {failures} failed" if failures else "")
        return result

    return invoke


def start_api(api: dict[str, Any], load: Any) -> Any:
    """The REST API the spec describes, serving (``load`` turns a handler path into the handler)."""
    from bulk_restore_cli.local.apigw import LocalRestApi, Route, UsagePlan, gateway_responses

    routes = [
        Route(
            r["method"],
            r["path"],
            load(r["handler"]),
            r["function_name"],
            timeout_s=r["timeout_s"],
            api_key_required=r["api_key_required"],
            stage=r["stage"],
            api_id=r["api_id"],
        )
        for r in api["routes"]
    ]
    return LocalRestApi(
        routes,
        api["api_keys"],
        host=api["host"],
        port=api["port"],
        region=api["region"],
        account_id=api["account_id"],
        responses=gateway_responses(api["gateway_responses"]),
        usage_plan=UsagePlan.from_template(api["usage_plan"]) if api["served"] else None,
    ).start()


def serve(document: dict[str, Any], stop: threading.Event) -> tuple[list[Poller], Scheduler | None]:
    """Start the pollers and the scheduler the spec describes (in this process)."""
    from bulk_restore_cli.local.stack import configure_aws_environment

    configure_aws_environment(document["endpoint_url"], document["region"])
    os.environ.update(document["environment"])
    for path in document["code_paths"]:
        if path not in sys.path:
            sys.path.append(path)
    import boto3

    session = boto3.session.Session(region_name=document["region"])
    if document.get("api"):
        start_api(document["api"], load_handler)
    sources = [SqsEventSource(**{**raw, "handler": load_handler(raw["handler"])}) for raw in document["sources"]]
    schedules = [ScheduleSource(**{**raw, "handler": load_handler(raw["handler"])}) for raw in document["schedules"]]
    streams = [DynamoDBStreamEventSource(**{**raw, "handler": load_handler(raw["handler"])}) for raw in document.get("streams") or []]
    return start_functions(
        sources,
        schedules,
        lambda: EndpointSqs(session.client("sqs", endpoint_url=document["endpoint_url"]), document["endpoint_url"], document["region"]),
        stop,
        streams=streams,
        clients=lambda service: session.client(service, endpoint_url=document["endpoint_url"]),
    )


def main() -> int:
    document = json.loads(sys.stdin.readline())
    ready = sys.stdout
    sys.stdout = sys.stderr  # the functions log to stdout, as in Lambda; here it goes with the parent's log
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops this process
    try:
        pollers, scheduler = serve(document, stop)
    except OSError as exc:  # the API's port taken since the stack checked it
        log.error("could not start: %s", exc)
        return 1
    ready.write("ready\n")
    ready.flush()
    parent = os.getppid()
    while not stop.wait(0.2):
        if os.getppid() != parent:
            break  # the local stack is gone (killed): so are we
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for poller in pollers:
        poller.join(max(0.0, deadline - time.monotonic()))
    if scheduler is not None:
        scheduler.join(max(0.0, deadline - time.monotonic()))
    sys.stderr.flush()
    os._exit(0)  # an invocation still running ends here, as a function's does when its process goes


if __name__ == "__main__":
    sys.exit(main())
