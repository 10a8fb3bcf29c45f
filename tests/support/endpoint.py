"""A local AWS endpoint (moto's server behind the local stack's gate) and plain boto3 clients of it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config

from bulk_restore_cli.demo import free_port
from bulk_restore_cli.local.endpoint import AwsEndpoint
from support.stack import REGION

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})  # one attempt: an error is the answer


@contextmanager
def running_endpoint() -> Iterator[AwsEndpoint]:
    """An endpoint on a free local port, stopped on exit (stopping one takes half a second: share it)."""
    served = AwsEndpoint("127.0.0.1", free_port()).start()
    try:
        yield served
    finally:
        served.stop()


def endpoint_url(endpoint: AwsEndpoint) -> str:
    return f"http://127.0.0.1:{endpoint.port}"


def endpoint_client(service: str, endpoint: AwsEndpoint | None = None, *, region: str = REGION, config: Config = NO_RETRIES) -> Any:
    """A plain boto3 client of ``endpoint``; without one, of AWS's own endpoints (for inside ``mock_aws``).

    ``config``: the retries (and anything else) the client runs with; by default it never retries."""
    url = {"endpoint_url": endpoint_url(endpoint)} if endpoint is not None else {}
    return boto3.client(service, region_name=region, config=config, **url)
