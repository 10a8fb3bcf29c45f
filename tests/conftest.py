"""Shared fixtures. Tests never call AWS: moto runs in-process, with fake credentials."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bulk_restore_cli.local import sqs as sqs_layer
from support.stack import DYNAMODB, REGION, Stack, configured_stack, reset_caches, restore_emulation

if TYPE_CHECKING:
    from bulk_restore_cli.local.endpoint import AwsEndpoint
    from bulk_restore_cli.local.s3_restore import S3RestoreEmulator

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_LOG_LEVEL": "INFO",  # the template's default: logging bugs show at the level that runs
    "POWERTOOLS_SERVICE_NAME": "bulk-restore",
}


@pytest.fixture(autouse=True, scope="session")
def dynamodb_layer() -> Iterator[None]:
    """Every test's moto runs with the local stack's DynamoDB layer (bulk_restore_cli.local.dynamodb)."""
    with DYNAMODB:
        sqs_layer.install()  # and with its SQS layer (bulk_restore_cli.local.sqs)
        try:
            yield
        finally:
            sqs_layer.uninstall()


@pytest.fixture(autouse=True)
def aws_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region, and no settings or profile from the developer's machine."""
    if "e2e" in request.path.parts:
        return  # the end-to-end tests set up their own environment
    for name in list(os.environ):
        if name.startswith("AWS_") or name in (
            "TABLE_NAME",
            "PLAN_QUEUE_URL",
            "RESTORE_QUEUE_URL",
            "TOPIC_ARN",
            "EVENTS_QUEUE_ARN",
            "REPORT_BUCKET",
        ):
            monkeypatch.delenv(name)
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    reset_caches()


@pytest.fixture
def aws(aws_env: None) -> Iterator[None]:
    """moto for every AWS service, in-process."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def stack_settings() -> dict[str, object]:
    """Extra environment for the stack's functions; override in a test module or with parametrize."""
    return {}


@pytest.fixture
def stack(aws: None, stack_settings: dict[str, object]) -> Iterator[Stack]:
    """The stack's resources on moto, with the functions configured to use them."""
    with configured_stack(**stack_settings) as built:
        yield built


@pytest.fixture
def emulator(stack: Stack) -> Iterator[S3RestoreEmulator]:
    """S3 restores as AWS documents them on the stack (support.stack.restore_emulation)."""
    with restore_emulation(stack) as running:
        yield running


@pytest.fixture(scope="module")
def endpoint() -> Iterator[AwsEndpoint]:
    """One local AWS endpoint for the module (stopping one takes half a second); each test names
    its own resources. Clients of it: support.endpoint.endpoint_client."""
    from support.endpoint import running_endpoint

    with running_endpoint() as served:
        yield served
