"""Each function's log lines carry its own name, also where functions share one process (the local stack)."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bulk_restore.handlers import completion, inject_function_context, sweeper
from bulk_restore.usecases import sweep
from bulk_restore_cli.local.lambda_runtime import LambdaContext
from support.stack import Stack

SWEEPER = "bulk-restore-SweeperFunction-1A2B"
COMPLETION = "bulk-restore-CompletionFunction-3C4D"
LogLines = Callable[[str], list[dict[str, Any]]]


@pytest.fixture
def logged() -> Iterator[LogLines]:
    """The functions' structured log lines with a given message, as Lambda (and the local stack) writes them.

    Every handler module's Logger writes through one handler. The use cases' child loggers reach it
    when their modules are imported with POWERTOOLS_SERVICE_NAME set, as in Lambda; here they were
    imported before it was, so their lines are formatted by that handler's formatter directly.
    """
    handler = sweeper.logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    child = logging.getLogger(sweep.logger.name)
    beside = logging.StreamHandler(buffer)
    beside.setFormatter(handler.formatter)
    if not child.name.startswith(f"{sweeper.logger.name}."):
        child.addHandler(beside)

    def lines(message: str) -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
        return [line for line in parsed if line.get("message") == message]

    try:
        yield lines
    finally:
        child.removeHandler(beside)
        handler.setStream(previous)


def garbage_batch() -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": "m-1",
                "body": "not an S3 event",
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:completion",
            }
        ]
    }


def test_a_sweep_logs_as_the_sweeper_while_the_completion_function_runs_beside_it(stack: Stack, logged: LogLines) -> None:
    # Given a sweep under way in one thread, as the local stack's scheduler runs it
    sweep_started, completion_done = threading.Event(), threading.Event()
    sweeper_use_case = stack.services().sweeper
    sweep = sweeper_use_case.run

    def sweep_once_the_other_function_ran(*args: Any, **kwargs: Any) -> Any:
        sweep_started.set()
        assert completion_done.wait(10)
        return sweep(*args, **kwargs)

    sweeper_use_case.run = sweep_once_the_other_function_ran  # type: ignore[method-assign]
    scheduled = threading.Thread(target=sweeper.handler, args=({"source": "aws.events"}, LambdaContext(SWEEPER, 600)))
    scheduled.start()
    assert sweep_started.wait(10)
    # When the completion function is invoked in another thread meanwhile, as its poller does
    answer = completion.handler(garbage_batch(), LambdaContext(COMPLETION, 120))
    completion_done.set()
    scheduled.join(10)
    # Then the sweep's line names the sweeper, and the completion function's line names it
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    [swept] = logged("sweep done")
    [refused] = logged("message is no S3 restore event")
    assert (swept["function_name"], swept["function_arn"].rsplit(":", 1)[1]) == (SWEEPER, SWEEPER)
    assert (refused["function_name"], refused["function_arn"].rsplit(":", 1)[1]) == (COMPLETION, COMPLETION)
    assert swept["function_request_id"] != refused["function_request_id"]


def test_functions_taking_turns_in_one_thread_each_log_their_own_name(stack: Stack, logged: LogLines) -> None:
    # Given the completion function and the sweeper in one process
    # When they take turns in one thread (as the tests' event sources run them)
    completion.handler(garbage_batch(), LambdaContext(COMPLETION, 120))
    sweeper.handler({"source": "aws.events"}, LambdaContext(SWEEPER, 600))
    completion.handler(garbage_batch(), LambdaContext(COMPLETION, 120))
    # Then each line names its own function
    assert [line["function_name"] for line in logged("message is no S3 restore event")] == [COMPLETION, COMPLETION]
    assert [line["function_name"] for line in logged("sweep done")] == [SWEEPER]


def test_each_function_has_its_own_cold_start(logged: LogLines) -> None:
    # Given two functions of one process, neither invoked yet
    @inject_function_context(completion.logger)
    def first(event: Any, context: Any) -> None:
        completion.logger.info("first ran")

    @inject_function_context(completion.logger)
    def second(event: Any, context: Any) -> None:
        completion.logger.info("second ran")

    # When the first runs twice and the second once after it
    first({}, LambdaContext("First", 60))
    first({}, LambdaContext("First", 60))
    second({}, LambdaContext("Second", 60))
    # Then each function's first invocation, and only that one, is a cold start (as in Lambda, one function per process)
    assert [(line["function_name"], line["cold_start"]) for line in logged("first ran")] == [("First", True), ("First", False)]
    assert [(line["function_name"], line["cold_start"]) for line in logged("second ran")] == [("Second", True)]
    # And the function's keys do not outlive its invocation
    completion.logger.info("between invocations")
    assert all(line.get("function_name") not in ("First", "Second") for line in logged("between invocations"))
