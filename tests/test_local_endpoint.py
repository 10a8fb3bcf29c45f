"""The local stack's AWS endpoint (local/endpoint.py): moto behind an admission gate.

Requests compute in moto one at a time, the API's own before the workers' waiting ones, and
Lambda's event-source intake after both; a long poll never holds the gate; the figures name each operation, and ``bulk-restore local
--endpoint-stats FILE`` writes them to FILE when stopped, even when the stop is held up.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from bulk_restore_cli.demo import free_port
from bulk_restore_cli.local.endpoint import API_APP_ID, BATCH, INTAKE, INTERACTIVE, AdmissionGate, AwsEndpoint, GatedApplication, operation

REGION = "us-east-1"


def test_the_gate_admits_its_slots_then_the_api_s_waiting_requests_then_calls_then_intake() -> None:
    gate = AdmissionGate(slots=1)
    gate.enter(BATCH)  # a worker's request computing
    order: list[str] = []

    def request(name: str, priority: int) -> threading.Thread:
        def run() -> None:
            gate.enter(priority)
            order.append(name)
            gate.leave()

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 5
        while gate.waiting < expected[0] and time.monotonic() < deadline:
            time.sleep(0.001)
        return thread

    expected = [0]
    threads = []
    arrivals = [
        ("poller-1", INTAKE),
        ("worker-1", BATCH),
        ("worker-2", BATCH),
        ("poller-2", INTAKE),
        ("api", INTERACTIVE),
        ("worker-3", BATCH),
    ]
    for name, priority in arrivals:
        expected[0] += 1
        threads.append(request(name, priority))
    assert gate.waiting == 6 and order == []  # nobody passes the one slot while it is held

    gate.leave()
    for thread in threads:
        thread.join(5)
    assert order == ["api", "worker-1", "worker-2", "worker-3", "poller-1", "poller-2"]
    gate.enter(BATCH)  # and the slot is free again
    gate.leave()


def test_the_gate_never_has_more_holders_than_slots() -> None:
    gate = AdmissionGate(slots=2)
    inside, most, lock = [0], [0], threading.Lock()

    def work() -> None:
        for _ in range(200):
            gate.enter(BATCH)
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0)
            with lock:
                inside[0] -= 1
            gate.leave()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert most[0] == 2 and inside[0] == 0 and gate.waiting == 0
    with pytest.raises(ValueError):
        AdmissionGate(slots=0)


def test_lambda_s_intake_waits_behind_calls_that_arrived_after_it_and_the_api_goes_first() -> None:
    # Given the endpoint's application computing one request, and then, while it does, a poller's
    # receive, a stream read, a function's call and an API read arriving in that order
    order: list[str] = []
    inside = threading.Event()
    release = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        order.append(environ["name"])
        if environ["name"] == "first":
            inside.set()
            release.wait(5)
        start_response("200 OK", [])
        return [b""]

    gated = GatedApplication(app)
    sign = "AWS4-HMAC-SHA256 Credential=testing/20261203/us-east-1/{}/aws4_request, SignedHeaders=host, Signature=x"
    requests = [
        ("first", {"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.PutItem"}),
        ("poller receive", {"PATH_INFO": "/_bulk_restore/sqs", "QUERY_STRING": "Action=ReceiveMessage"}),
        ("stream read", {"HTTP_X_AMZ_TARGET": "DynamoDBStreams_20120810.GetRecords"}),
        ("restore", {"REQUEST_METHOD": "POST", "QUERY_STRING": "restore", "HTTP_AUTHORIZATION": sign.format("s3")}),
        ("poller delete", {"PATH_INFO": "/_bulk_restore/sqs", "QUERY_STRING": "Action=DeleteMessageBatch"}),
        ("api read", {"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.Query", "HTTP_USER_AGENT": f"Boto3/1 app/{API_APP_ID}"}),
    ]
    threads = []
    for number, (name, environ) in enumerate(requests):
        thread = threading.Thread(target=gated, args=({"name": name, **environ}, lambda *_: None))
        thread.start()
        threads.append(thread)
        if number == 0:
            assert inside.wait(5)
        deadline = time.monotonic() + 5
        while gated.gate.waiting < number and time.monotonic() < deadline:
            time.sleep(0.001)

    # When the first request ends
    release.set()
    for thread in threads:
        thread.join(5)

    # Then the API's read goes first, then the calls (a poller's delete settles a batch: it is
    # one), and the intake last, each class in arrival order
    assert order == ["first", "api read", "restore", "poller delete", "poller receive", "stream read"]
    assert set(gated.stats()) == {
        "dynamodb:PutItem",
        "amazonsqs:ReceiveMessage (poller)",
        "dynamodbstreams:GetRecords",
        "s3:RestoreObject",
        "amazonsqs:DeleteMessageBatch (poller)",
        "dynamodb:Query (API)",
    }


@pytest.mark.parametrize(
    "environ, name",
    [
        ({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.TransactWriteItems"}, "dynamodb:TransactWriteItems"),
        ({"HTTP_X_AMZ_TARGET": "AmazonSQS.ReceiveMessage"}, "amazonsqs:ReceiveMessage"),
        (
            {
                "REQUEST_METHOD": "POST",
                "QUERY_STRING": "restore",
                "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=testing/20261203/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x",
            },
            "s3:RestoreObject",
        ),
        (
            {
                "REQUEST_METHOD": "PUT",
                "QUERY_STRING": "",
                "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=testing/20261203/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x",
            },
            "s3:PUT",
        ),
        (
            {"REQUEST_METHOD": "POST", "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=testing/20261203/us-east-1/sns/aws4_request"},
            "sns:POST",
        ),
        ({"REQUEST_METHOD": "GET"}, "?:GET"),
    ],
)
def test_requests_are_named_by_service_and_operation_from_their_headers(environ: dict[str, str], name: str) -> None:
    assert operation(environ) == name


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsEndpoint]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SDK_UA_APP_ID", raising=False)
    served = AwsEndpoint("127.0.0.1", free_port()).start()
    try:
        yield served
    finally:
        served.stop()


def _client(endpoint: AwsEndpoint, service: str, **config: Any) -> Any:
    return boto3.session.Session(region_name=REGION).client(
        service, endpoint_url=f"http://127.0.0.1:{endpoint.port}", config=Config(retries={"max_attempts": 1}, **config)
    )


def test_a_long_poll_waiting_for_messages_lets_every_other_request_through(endpoint: AwsEndpoint) -> None:
    # Given a client long-polling an empty queue for 3 seconds (as every event source does)
    sqs = _client(endpoint, "sqs")
    queue = sqs.create_queue(QueueName="work")["QueueUrl"]
    polled: list[Any] = []
    poll = threading.Thread(target=lambda: polled.append(sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=3)))
    poll.start()
    time.sleep(0.3)
    # When other clients call meanwhile, among them the one that sends the message it waits for
    started = time.monotonic()
    s3 = _client(endpoint, "s3")
    s3.create_bucket(Bucket="gate-test")
    s3.put_object(Bucket="gate-test", Key="k", Body=b"x")
    _client(endpoint, "sqs").send_message(QueueUrl=queue, MessageBody="hello")
    answered = time.monotonic() - started
    poll.join(10)
    # Then they are answered at once (the gate was not held by the waiting poll), and the poll gets the message
    assert answered < 1.5, answered
    assert [m["Body"] for m in polled[0].get("Messages", [])] == ["hello"]


def test_the_figures_count_each_operation_and_name_the_api_s_requests(endpoint: AwsEndpoint) -> None:
    s3 = _client(endpoint, "s3")
    s3.create_bucket(Bucket="figures")
    for n in range(3):
        s3.put_object(Bucket="figures", Key=f"k{n}", Body=b"x", StorageClass="GLACIER")
    api_dynamodb = _client(endpoint, "dynamodb", user_agent_appid=API_APP_ID)  # what the API's functions send
    api_dynamodb.list_tables()
    _client(endpoint, "dynamodb").list_tables()

    stats = endpoint.stats()
    assert stats["s3:PUT"]["requests"] == 4  # the bucket and three objects
    assert stats["dynamodb:ListTables (API)"]["requests"] == 1
    assert stats["dynamodb:ListTables"]["requests"] == 1
    assert all(figures["seconds"] >= 0 and figures["waited_seconds"] >= 0 for figures in stats.values())


def test_the_dispatcher_finds_each_host_s_backend_as_moto_does_and_looks_it_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from bulk_restore_cli.local.endpoint import dispatcher

    hosts = [
        None,
        "moto_api",
        "s3",
        "dynamodb.us-east-1.amazonaws.com",
        "sqs.eu-west-1.amazonaws.com",
        "bucket.s3.amazonaws.com",
        "events.us-east-1.amazonaws.com",
        "nothing.example",
    ]
    plain = DomainDispatcherApplication(create_backend_app)
    expected = [plain.get_backend_for_host(h) for h in hosts]
    listings = []
    original = moto.backends.list_of_moto_modules
    monkeypatch.setattr(moto.backends, "list_of_moto_modules", lambda: listings.append(1) or original())
    cached = dispatcher(create_backend_app)
    assert [cached.get_backend_for_host(h) for h in hosts] == expected
    first = len(listings)
    assert first > 0 and expected[3] == "dynamodb" and expected[4] == "sqs"
    assert [cached.get_backend_for_host(h) for h in hosts * 3] == expected * 3
    assert len(listings) == first  # each host looked up once


def test_the_endpoint_writes_an_inventory_report_of_a_bucket_on_request() -> None:
    import json as json_module
    from urllib.request import Request, urlopen

    from bulk_restore.domain.inventory import parse_manifest
    from bulk_restore_cli.local.dynamodb import DynamoDBEmulation

    port = free_port()
    with DynamoDBEmulation():
        endpoint = AwsEndpoint("127.0.0.1", port).start()
        try:
            url = f"http://127.0.0.1:{port}"
            s3 = boto3.client("s3", endpoint_url=url, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
            for bucket in ("source", "reports"):
                s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket="source", Key="a b.bin", Body=b"x", StorageClass="GLACIER")
            s3.put_object(Bucket="source", Key="hot.txt", Body=b"x")
            answer = json_module.loads(
                urlopen(
                    Request(f"{url}/_bulk_restore/inventory?bucket=source&destination=reports&prefix=inv", method="POST"), timeout=10
                ).read()
            )
            manifest = parse_manifest(s3.get_object(Bucket="reports", Key=answer["manifest_key"])["Body"].read())
            assert manifest.source_bucket == "source" and manifest.destination_bucket == "reports" and len(manifest.files) == 1
            assert answer["manifest_key"].startswith("inv/source/")
            with pytest.raises(Exception) as refused:
                urlopen(Request(f"{url}/_bulk_restore/inventory?bucket=nope&destination=reports", method="POST"), timeout=10)
            assert refused.value.code == 400  # type: ignore[attr-defined]
        finally:
            endpoint.stop()


def test_one_connection_carries_a_client_s_requests_each_body_read_exactly(endpoint: AwsEndpoint) -> None:
    # Given the endpoint counting the connections it accepts
    accepted: list[Any] = []
    server = endpoint._server
    serve = server.process_request
    server.process_request = lambda request, address: (accepted.append(address), serve(request, address))
    s3 = _client(endpoint, "s3")
    # When one client writes objects (a file-like body makes botocore ask for 100-continue) and reads them back
    s3.create_bucket(Bucket="kept-alive")
    bodies = {f"k{n}": bytes([n]) * (1000 * n + 1) for n in range(4)}
    for key, body in bodies.items():
        s3.put_object(Bucket="kept-alive", Key=key, Body=io.BytesIO(body))
    read = {key: s3.get_object(Bucket="kept-alive", Key=key)["Body"].read() for key in bodies}
    # Then every body went and came back whole, over the one connection the client opened
    assert read == bodies
    assert len(accepted) == 1, accepted


def test_a_chunked_request_is_answered_and_its_connection_closed(endpoint: AwsEndpoint) -> None:
    s3 = _client(endpoint, "s3")
    s3.create_bucket(Bucket="chunked")
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    # A body of unknown length (Transfer-Encoding: chunked) cannot be read ahead of the application
    connection.request(
        "PUT",
        "/chunked/streamed",
        body=iter([b"abc", b"def"]),
        encode_chunked=True,
        headers={
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261203/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x"
        },
    )
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200
    assert answer.getheader("Connection") == "close"
    assert s3.get_object(Bucket="chunked", Key="streamed")["Body"].read() == b"abcdef"


def test_the_tuned_interpreter_freezes_what_survives_a_full_collection_and_still_collects_young_cycles() -> None:
    script = """
import gc, sys, weakref
from bulk_restore_cli.local.endpoint import SWITCH_INTERVAL, tune_interpreter
kept = [[n] for n in range(50_000)]
tune_interpreter()
tune_interpreter()  # twice: one callback
gc.collect()
frozen = gc.get_freeze_count()
class Node: pass
a, b = Node(), Node()
a.other, b.other = b, a
alive = weakref.ref(a)
del a, b
gc.collect()
print(sys.getswitchinterval() == SWITCH_INTERVAL, frozen >= 50_000, alive() is None, gc.callbacks.count(gc.callbacks[-1]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    # switch interval set; the survivors of the full collection frozen; a cycle made after it collected; one callback
    assert done.stdout.split() == ["True", "True", "True", "1"], done.stderr


def _raw_get(connection: Any, path: str) -> bytes:
    """One GET on a raw socket; what the first recv brings of its answer."""
    auth = "AWS4-HMAC-SHA256 Credential=testing/20261203/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x"
    connection.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\r\n".encode())
    return connection.recv(65536)


def test_an_answer_leaves_whole_in_one_write_on_a_kept_alive_connection(endpoint: AwsEndpoint) -> None:
    import socket

    s3 = _client(endpoint, "s3")
    s3.create_bucket(Bucket="one-write")
    s3.put_object(Bucket="one-write", Key="k", Body=b"the-body-of-k")
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        answers = [_raw_get(connection, "/one-write/k") for _ in range(3)]
    # Each answer's first read holds its headers and its body: written apart, the body waited
    # behind Nagle's algorithm for the client's delayed acknowledgement of the headers
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\nthe-body-of-k"), answer


def test_moto_s_action_names_are_listed_once_per_class_and_again_when_the_class_changes() -> None:
    from moto.core.utils import method_names_from_class as plain
    from moto.dynamodb.responses import DynamoHandler
    from moto.sqs.responses import SQSResponse

    from bulk_restore_cli.local.endpoint import method_names_from_class

    for cls in (DynamoHandler, SQSResponse):
        assert method_names_from_class(cls) == plain(cls)
        assert method_names_from_class(cls) is method_names_from_class(cls)

    class Handler(SQSResponse):
        pass

    assert "brand_new_action" not in method_names_from_class(Handler)
    Handler.brand_new_action = lambda self: None  # type: ignore[attr-defined]
    assert "brand_new_action" in method_names_from_class(Handler)
    assert method_names_from_class(Handler) == plain(Handler)


# ---- `bulk-restore local --endpoint-stats` --------------------------------------------------------


def _stack_with_figures(tmp_path: Any) -> tuple[Any, Any, dict[str, Any]]:
    """`bulk-restore local --endpoint-stats FILE` in a subprocess, as local-scale starts it, with three
    ListTables and an S3 bucket and object made through its endpoint."""
    from bulk_restore_cli.demo import LocalStackProcess

    figures = tmp_path / "endpoint.json"
    stack = LocalStackProcess(5.0, tmp_path, extra=["--endpoint-stats", str(figures)])
    info = stack.start(timeout=120)
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=info["region"])
    config = Config(retries={"max_attempts": 1})
    for _ in range(3):
        session.client("dynamodb", endpoint_url=info["aws_endpoint_url"], config=config).list_tables()
    s3 = session.client("s3", endpoint_url=info["aws_endpoint_url"], config=config)
    s3.create_bucket(Bucket="figures-bucket")
    s3.put_object(Bucket="figures-bucket", Key="k", Body=b"x")
    return stack, figures, info


def _check_figures(figures: dict[str, Any]) -> None:
    assert figures["dynamodb:ListTables"]["requests"] >= 3
    assert figures["s3:PUT"]["requests"] >= 2  # the bucket and the object (provisioning makes buckets too)
    for name, entry in figures.items():
        assert set(entry) == {"requests", "seconds", "waited_seconds"}, name
        assert entry["requests"] >= 1 and entry["seconds"] >= 0 and entry["waited_seconds"] >= 0, name


def test_the_local_stack_writes_its_endpoint_figures_when_stopped_as_local_scale_stops_it(tmp_path: Any) -> None:
    stack, figures, _ = _stack_with_figures(tmp_path)
    try:
        assert not figures.exists()  # written when the stack stops
    finally:
        code = stack.stop()  # SIGTERM, then waiting for the process (bench/local_scale.py)
    assert code == 0, stack.log_tail()
    _check_figures(json.loads(figures.read_text(encoding="utf-8")))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def _state(pid: int) -> str | None:
    """A process's state letter from /proc (T: stopped), None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_figures_are_written_before_a_stop_held_up_by_the_functions_is_over(tmp_path: Any) -> None:
    """The stop waits for the functions' process (up to its grace), then stops the emulations; the
    process is ended EXIT_SECONDS after the signal whatever it is doing. The figures are on disk
    as the stop begins, not only at its end."""
    import re
    import signal

    stack, figures, _ = _stack_with_figures(tmp_path)
    found = re.search(r"functions: process (\d+)", stack.log_path.read_text(encoding="utf-8"))
    assert found, stack.log_tail()
    functions = int(found.group(1))
    os.kill(functions, signal.SIGSTOP)  # an invocation that will not finish: the stop waits for it
    held: list[str | None] = []
    stopping = threading.Thread(target=lambda: held.append(str(stack.stop())))
    try:
        stopping.start()
        seen_while = None
        deadline = time.monotonic() + 20
        while stopping.is_alive() and time.monotonic() < deadline:
            if figures.exists():
                seen_while = _state(functions)
                break
            time.sleep(0.02)
        stopping.join(30)
    finally:
        if _state(functions) is not None and b"function_host" in open(f"/proc/{functions}/cmdline", "rb").read():
            os.kill(functions, signal.SIGKILL)  # not left behind if the stack did not end it
    assert held == ["0"], stack.log_tail()
    assert seen_while == "T"  # on disk while the functions' process was still held
    _check_figures(json.loads(figures.read_text(encoding="utf-8")))
