"""The local API's HTTP server (local/apigw.py): an answer leaves in one write on a kept-alive connection."""

from __future__ import annotations

import json
import socket
from typing import Any

from bulk_restore_cli.demo import free_port
from bulk_restore_cli.local.apigw import LocalRestApi, Route


def _hello(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps({"hello": event["path"]})}


def test_each_answer_s_first_read_holds_its_headers_and_body() -> None:
    api = LocalRestApi([Route("GET", "/hello", _hello, "hello")], port=free_port()).start()
    try:
        host, port = api._server.server_address[:2]
        with socket.create_connection((host, port), timeout=10) as connection:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            answers = []
            for _ in range(3):
                connection.sendall(b"GET /prod/hello HTTP/1.1\r\nHost: local\r\n\r\n")
                answers.append(connection.recv(65536))
    finally:
        api.stop()
    # Written apart, a kept-alive connection's body waited behind Nagle's algorithm for the
    # client's delayed acknowledgement of the headers
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'\r\n\r\n{"hello": "/hello"}'), answer
