"""PartiQL single-item writes on the local stack's DynamoDB: microseconds per statement, by table size.

``python -m bulk_restore_cli.bench.partiql_micro [--sizes 1000,100000] [--rounds 40]``

The job's object writes are single-item PartiQL statements, 25 to a ``BatchExecuteStatement``
(src/bulk_restore/adapters/dynamodb.py): an ``INSERT`` of each object, then an ``UPDATE`` that
moves it from RESTORING (``SET "state" = ? SET "updated_at" = ? WHERE "pk" = ? AND "sk" = ? AND
"state" = ?``). This times both on a table with a stream (NEW_AND_OLD_IMAGES, as the job table's),
on moto with the local stack's DynamoDB and DynamoDB Streams layers, at each table size, through
two paths of local/partiql.py:

- ``moto path``: every statement as moto's put_item / update_item (the fast path switched off);
- ``fast path``: INSERTs and simple UPDATEs applied directly (local/partiql.py's notes).

Two figures each, per statement: ``layer``, the statement's own work (``prepare`` and ``run`` on the
backend); ``request``, a whole BatchExecuteStatement of 25 through moto's server application in
process (request parsing, the layer, the answer), divided by 25. The big table is filled straight
into moto's backend. Rounds alternate between the paths; the figures are the minimum and the
median over rounds. Nothing here asserts a time: it prints what it measured.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

TABLE = "bench-jobs"
REGION = "us-east-1"
ACCOUNT = "123456789012"
BATCH = 25
SHARDS = 16  # object partitions of one job, as the job table spreads them
JOB = "JOB#0f7c3a52-bench"
_AUTH = f"AWS4-HMAC-SHA256 Credential=testing/20261204/{REGION}/dynamodb/aws4_request, SignedHeaders=host, Signature=0"
INSERT = f"INSERT INTO \"{TABLE}\" VALUE {{'pk': ?, 'sk': ?, 'state': ?, 'bucket': ?, 'key': ?, 'expires_at': ?}}"
MOVE = f'UPDATE "{TABLE}" SET "state" = ? SET "updated_at" = ? WHERE "pk" = ? AND "sk" = ? AND "state" = ?'


def _object_key(n: int) -> tuple[dict[str, str], dict[str, str]]:
    return {"S": f"{JOB}#O#{n % SHARDS:02d}"}, {"S": f"{n:032x}"}


def insert(n: int) -> dict[str, Any]:
    pk, sk = _object_key(n)
    return {
        "Statement": INSERT,
        "Parameters": [pk, sk, {"S": "RESTORING"}, {"S": "photos"}, {"S": f"2026/12/{n:08d}.jpg"}, {"N": "1800000000"}],
    }


def move(n: int) -> dict[str, Any]:
    pk, sk = _object_key(n)
    return {"Statement": MOVE, "Parameters": [{"S": "RESTORED"}, {"S": "2026-12-04T12:00:00Z"}, pk, sk, {"S": "RESTORING"}]}


@contextmanager
def _moto() -> Iterator[Any]:
    """moto in process with the local stack's DynamoDB layers, and a job table with a stream."""
    import boto3
    from moto import mock_aws

    from bulk_restore_cli.local.dynamodb import DynamoDBEmulation
    from bulk_restore_cli.local.dynamodb_streams import DynamoDBStreamsEmulation

    with DynamoDBEmulation(), DynamoDBStreamsEmulation(), mock_aws():
        client = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION).client("dynamodb")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        yield client


def _backend() -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[ACCOUNT][REGION]


def fill(count: int, start: int = 0) -> None:
    """Objects ``start`` to ``start + count`` (RESTORED), written straight into moto's table."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    table = _backend().get_table(TABLE)
    for n in range(start, start + count):
        pk, sk = _object_key(n)
        hash_key, range_key = DynamoType(pk), DynamoType(sk)
        attrs = {"pk": pk, "sk": sk, "state": {"S": "RESTORED"}, "bucket": {"S": "photos"}, "key": {"S": f"2026/12/{n:08d}.jpg"}}
        table.items[hash_key][range_key] = Item(hash_key, range_key, attrs)


def _count() -> int:
    return sum(len(partition) for partition in _backend().get_table(TABLE).items.values())


def _layer_seconds(statements: list[dict[str, Any]]) -> float:
    """The statements' own work in local/partiql.py: prepared and run on the backend, as a batch."""
    from bulk_restore_cli.local import partiql

    backend = _backend()
    began = time.perf_counter()
    with partiql._lock():
        for statement in statements:
            parsed = partiql.parse(statement["Statement"])
            assert parsed is not None
            ready = partiql.prepare(backend, parsed, statement, batch=True)
            partiql.run(backend, ready)
    return time.perf_counter() - began


class _Endpoint:
    """moto's server application for DynamoDB, called in process (no socket)."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import create_backend_app

        self.client = create_backend_app("dynamodb").test_client()

    def batch(self, statements: list[dict[str, Any]]) -> tuple[float, list[dict[str, Any]]]:
        body = json.dumps({"Statements": statements})
        headers = {
            "X-Amz-Target": "DynamoDB_20120810.BatchExecuteStatement",
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": _AUTH,
            "Host": f"dynamodb.{REGION}.amazonaws.com",
        }
        began = time.perf_counter()
        answer = self.client.post("/", data=body, headers=headers)
        seconds = time.perf_counter() - began
        if answer.status_code != 200:
            raise RuntimeError(f"BatchExecuteStatement answered {answer.status_code}: {answer.data[:300]!r}")
        return seconds, json.loads(answer.data)["Responses"]


def measure(sizes: tuple[int, ...] = (1_000, 100_000), rounds: int = 40) -> list[dict[str, Any]]:
    """Per table size, statement and path: microseconds per statement (min and median over rounds).
    A size is the table's items when its rounds begin (at least the size asked for: a smaller one
    after a larger one, or after the rounds' own objects, is what the table holds)."""
    from bulk_restore_cli.local import partiql

    rows: list[dict[str, Any]] = []
    with _moto():
        endpoint = _Endpoint()
        filled = 0
        fresh = itertools.count(10**9)  # object numbers never filled
        for size in sizes:
            present = _count()
            if present < size:  # (the rounds before added their objects too)
                fill(size - present, filled)
                filled += size - present
            start = _count()
            gc.collect()
            gc.freeze()  # as the local stack's endpoint does (local/endpoint.py): full collections skip the table
            times: dict[tuple[str, str, str], list[float]] = {}
            for _ in range(rounds):
                for path, fast in (("moto path", False), ("fast path", True)):
                    with partiql.fast_path(fast):
                        for how in ("layer", "request"):
                            refs = [next(fresh) for _ in range(BATCH)]
                            for kind, make in (("INSERT", insert), ("UPDATE", move)):
                                statements = [make(n) for n in refs]
                                if how == "layer":
                                    seconds = _layer_seconds(statements)
                                else:
                                    seconds, responses = endpoint.batch(statements)
                                    if any("Error" in r for r in responses):
                                        raise RuntimeError(f"a statement failed: {responses}")
                                times.setdefault((kind, how, path), []).append(seconds / BATCH * 1e6)
            items = _count()
            for (kind, how, path), values in sorted(times.items()):
                rows.append(
                    {
                        "table_items": start,
                        "items_after": items,
                        "statement": kind,
                        "measured": how,
                        "path": path,
                        "min_us": round(min(values), 1),
                        "median_us": round(statistics.median(values), 1),
                    }
                )
            gc.unfreeze()
    return rows


def render(rows: list[dict[str, Any]], rounds: int) -> str:
    lines = [
        f"PartiQL single-item writes on a table with a stream: microseconds per statement (min / median of {rounds} batches of {BATCH})",
        f"{'table items':>12}  {'statement':<9} {'measured':<8} {'moto path':>17} {'fast path':>17} {'ratio (median)':>15}",
    ]
    keyed = {(r["table_items"], r["statement"], r["measured"], r["path"]): r for r in rows}
    for size, kind, how in sorted({(r["table_items"], r["statement"], r["measured"]) for r in rows}, key=lambda k: (k[0], k[1], k[2])):
        slow, fast = keyed[(size, kind, how, "moto path")], keyed[(size, kind, how, "fast path")]
        ratio = slow["median_us"] / fast["median_us"] if fast["median_us"] else float("nan")
        lines.append(
            f"{size:>12,}  {kind:<9} {how:<8} {slow['min_us']:>8.1f} / {slow['median_us']:>6.1f} "
            f"{fast['min_us']:>8.1f} / {fast['median_us']:>6.1f} {ratio:>14.1f}x"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bulk_restore_cli.bench.partiql_micro", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000", help="table sizes, in items, comma-separated (default 1000,100000)")
    parser.add_argument("--rounds", type=int, default=40, help="batches of 25 per statement, path and size (default 40)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = parser.parse_args(argv)
    sizes = tuple(sorted(int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()))
    rows = measure(sizes, args.rounds)
    print(json.dumps(rows, indent=1) if args.json else render(rows, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
