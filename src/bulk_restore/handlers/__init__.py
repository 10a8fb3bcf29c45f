"""Lambda entry points, one per event source: parse, make one use-case call, answer."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Tracer

from bulk_restore.adapters.metrics import powertools_metrics

Handler = TypeVar("Handler", bound=Callable[..., Any])

# Every function's X-Ray tracing (`@tracer.capture_lambda_handler`): on in Lambda when the
# template's Tracing is Active; Powertools turns it off elsewhere (the local stack, the tests),
# as POWERTOOLS_TRACE_DISABLED=true does anywhere. Responses are not put in traces: they may
# hold object keys.
tracer = Tracer()
# Every function's metrics (`@metrics.log_metrics`): what the use cases counted during the
# invocation (bulk_restore.adapters.metrics) goes out as one EMF log line at its end.
metrics = powertools_metrics()
# An invocation that counted nothing (a status read, a quiet sweep) is normal: no warning for it.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


def inject_function_context(logger: Logger) -> Callable[[Handler], Handler]:
    """The function's keys on each log line (name, ARN, memory, request id, cold start), kept per thread.

    Every handler module's ``Logger(service="bulk-restore")`` is one logger with one formatter,
    and inject_lambda_context writes the function's name into that formatter's keys, which the
    whole process shares. Where several functions run in one process (the local stack, the
    tests), the function invoked last named the log lines of all of them. Keys set per thread
    (a context variable, which wins over the shared keys) name each invocation's own lines; in
    Lambda, one function per process, the lines are the same as inject_lambda_context's.
    """

    def decorate(handler: Handler) -> Handler:
        cold = [True]  # this function's first invocation in the process

        @functools.wraps(handler)
        def invoke(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            keys = {
                "cold_start": cold[0],
                "function_name": context.function_name,
                "function_memory_size": context.memory_limit_in_mb,
                "function_arn": context.invoked_function_arn,
                "function_request_id": context.aws_request_id,
            }
            cold[0] = False
            logger.thread_safe_append_keys(**keys)
            try:
                return handler(event, context, *args, **kwargs)
            finally:
                logger.thread_safe_remove_keys(keys)

        return invoke  # type: ignore[return-value]

    return decorate
