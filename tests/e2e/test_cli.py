"""`bulk-restore` run as a user runs it: what goes wrong is one line on stderr that says what to do, exit code 2.

Each command runs in a subprocess with a clean environment: no AWS variables, and a HOME with no
~/.aws, so nothing of the developer's machine (region, credentials, profile) reaches it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from bulk_restore_cli.demo import free_port
from support.cli import command

pytestmark = pytest.mark.e2e

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    empty = tmp_path / "home"
    empty.mkdir()
    return empty


def run(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    clean = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})}
    if os.environ.get("PYTHONPATH"):
        clean["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout, env=clean, stdin=subprocess.DEVNULL)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit code 2, no traceback, one line on stderr starting with the command's name and saying what to do."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bulk-restore: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert result.returncode == 2, (result.returncode, result.stderr)
    return lines[0]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """An AWS endpoint on loopback, as the local stack offers one."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


# ---- the command itself ------------------------------------------------------------------------------


def test_bulk_restore_alone_prints_the_help_and_exits_2(home: Path) -> None:
    # When a user runs the command with no subcommand
    result = run(home)
    # Then the help (with every command) is on stderr, with no traceback and no "error:" line
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "error:" not in result.stderr
    assert "usage: bulk-restore" in result.stderr
    for name in ("local", "demo", "redrive"):
        assert name in result.stderr
    assert result.stdout == ""


def test_version_prints_the_version(home: Path) -> None:
    from bulk_restore import __version__

    result = run(home, "--version")

    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, f"bulk-restore {__version__}", "")


# ---- redrive -------------------------------------------------------------------------------------------


def test_redrive_without_a_region_says_how_to_give_one(home: Path) -> None:
    result = run(home, "redrive", "--dlq-url", "https://sqs.us-east-1.amazonaws.com/123456789012/x-dlq", env=FAKE_CREDENTIALS)

    assert_one_line_error(result, "no AWS region", "--region", "AWS_REGION")


def test_redrive_takes_the_region_from_aws_region(home: Path, moto_endpoint: str) -> None:
    # Given AWS_REGION (the variable Lambda and the CLI examples set), and no AWS_DEFAULT_REGION
    # When redrive runs on a queue that does not exist
    result = run(
        home,
        "redrive",
        "--endpoint-url",
        moto_endpoint,
        "--dlq-url",
        f"{moto_endpoint}/123456789012/none-dlq",
        env={**FAKE_CREDENTIALS, "AWS_REGION": "eu-west-1"},
    )
    # Then the region was found: the error is about the queue, not the region
    assert_one_line_error(result, "no queue", "none-dlq")


def test_redrive_without_credentials_says_how_to_give_them(home: Path) -> None:
    # (the one AWS variable: on a CI runner in EC2, the instance's role would be credentials)
    result = run(
        home,
        "redrive",
        "--region",
        "us-east-1",
        "--dlq-url",
        "https://sqs.us-east-1.amazonaws.com/123456789012/x-dlq",
        env={"AWS_EC2_METADATA_DISABLED": "true"},
    )

    assert_one_line_error(result, "no AWS credentials", "AWS_ACCESS_KEY_ID", "aws configure")


def test_redrive_of_an_unknown_stack_names_it(home: Path, moto_endpoint: str) -> None:
    result = run(
        home, "redrive", "--region", "us-east-1", "--endpoint-url", moto_endpoint, "--stack-name", "no-such-stack", env=FAKE_CREDENTIALS
    )

    assert_one_line_error(result, "no stack", "no-such-stack", "us-east-1", "--stack-name")


def test_redrive_of_an_unknown_queue_names_it_and_moves_nothing(home: Path, moto_endpoint: str) -> None:
    # Given a dead-letter queue with one message, for a queue that exists
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1", **{k.lower(): v for k, v in FAKE_CREDENTIALS.items()})
    dead_letters = sqs.create_queue(QueueName="cli-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dead_letters, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    source = sqs.create_queue(
        QueueName="cli-source", Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 3})}
    )["QueueUrl"]
    sqs.send_message(QueueUrl=dead_letters, MessageBody="dead letter")
    # When redrive is given it and a queue that does not exist
    result = run(
        home,
        "redrive",
        "--region",
        "us-east-1",
        "--endpoint-url",
        moto_endpoint,
        "--dlq-url",
        dead_letters,
        "--dlq-url",
        f"{moto_endpoint}/123456789012/no-such-dlq",
        env=FAKE_CREDENTIALS,
    )
    # Then it names the unknown queue, and the known one's message was left where it was
    assert_one_line_error(result, "no queue", "no-such-dlq", "--dlq-url")
    depth = sqs.get_queue_attributes(QueueUrl=dead_letters, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert depth["ApproximateNumberOfMessages"] == "1"
    assert "Messages" not in sqs.receive_message(QueueUrl=source)


def test_redrive_of_an_unreachable_endpoint_says_so(home: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"

    result = run(
        home,
        "redrive",
        "--region",
        "us-east-1",
        "--endpoint-url",
        nobody,
        "--dlq-url",
        f"{nobody}/123456789012/x-dlq",
        env=FAKE_CREDENTIALS,
    )

    assert_one_line_error(result, "cannot reach", nobody, "--endpoint-url")


def test_redrive_moves_the_dead_letters_back_and_says_how_many(home: Path, moto_endpoint: str) -> None:
    # Given a dead-letter queue holding two messages of its source queue
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1", **{k.lower(): v for k, v in FAKE_CREDENTIALS.items()})
    dead_letters = sqs.create_queue(QueueName="moved-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dead_letters, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    source = sqs.create_queue(
        QueueName="moved-source", Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 3})}
    )["QueueUrl"]
    for body in ("one", "two"):
        sqs.send_message(QueueUrl=dead_letters, MessageBody=body)
    # When redrive runs on it
    result = run(home, "redrive", "--region", "us-east-1", "--endpoint-url", moto_endpoint, "--dlq-url", dead_letters, env=FAKE_CREDENTIALS)
    # Then both are back on the source queue, and it said so
    assert (result.returncode, result.stderr) == (0, "")
    assert "2 message(s) redriven" in result.stdout
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10)["Messages"]]
    assert sorted(bodies) == ["one", "two"]


def test_redrive_of_a_queue_that_is_no_dead_letter_queue_skips_it_and_exits_1(home: Path, moto_endpoint: str) -> None:
    # Given a queue no other queue sends its dead letters to
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1", **{k.lower(): v for k, v in FAKE_CREDENTIALS.items()})
    plain = sqs.create_queue(QueueName="plain-queue")["QueueUrl"]
    # When redrive is given it
    result = run(home, "redrive", "--region", "us-east-1", "--endpoint-url", moto_endpoint, "--dlq-url", plain, env=FAKE_CREDENTIALS)
    # Then it says why it was skipped, and the exit code says not everything was done
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"bulk-restore: {plain}: expected one source queue, found 0; skipped"
    assert "0 message(s) redriven" in result.stdout


# ---- local and demo ------------------------------------------------------------------------------------


def test_local_on_a_port_in_use_names_the_port(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = run(home, "local", "--aws-port", str(port), "--api-port", str(free_port()))

    assert_one_line_error(result, f"port {port}", "in use", "--aws-port")


def test_local_with_one_port_for_both_servers_says_so(home: Path) -> None:
    port = str(free_port())

    result = run(home, "local", "--aws-port", port, "--api-port", port)

    assert_one_line_error(result, "--api-port", "--aws-port")


def test_local_without_the_template_names_the_path(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "template.yaml"

    result = run(home, "local", "--template", str(missing), "--aws-port", str(free_port()), "--api-port", str(free_port()))

    assert_one_line_error(result, str(missing), "--template")


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--parameter", "RestoreConcurrency", ("--parameter", "NAME=VALUE", "RestoreConcurrency")),
        ("--parameter", "=16", ("--parameter", "NAME=VALUE")),
        ("--parameter", "NoSuchParameter=1", ("NoSuchParameter",)),
        ("--parameter", "RestoreConcurrency=lots", ("RestoreConcurrency",)),
        ("--env", "LOG_LEVEL", ("--env", "NAME=VALUE")),
        ("--restore-spread", "2", ("--restore-spread", "0", "1")),
    ],
)
def test_local_with_a_bad_option_says_what_to_fix(home: Path, option: str, value: str, words: tuple[str, ...]) -> None:
    result = run(home, "local", option, value, "--aws-port", str(free_port()), "--api-port", str(free_port()))

    assert_one_line_error(result, *words)


def test_demo_without_the_template_names_the_path(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "template.yaml"

    result = run(home, "demo", "--template", str(missing))

    assert_one_line_error(result, str(missing), "--template")
