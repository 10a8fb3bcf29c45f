"""The local stack's layer over moto's SQS: every call costs the same whatever a queue holds.

moto keeps a queue's messages in one list and walks all of it on most calls, some of them more
than once per message: a receive builds the list of visible messages and, for each message it
hands out, reads the queue's attributes (which counts every message three times) to check the
retention period; a delete walks the list twice to find its receipt handle and then rebuilds the
list; a send reads the attributes too. A job of 100,000 objects puts that many completion events
on one queue, and the cost of each call grew with them.

What changes here, and nothing else (SQS's semantics are moto's):
- a queue's attributes are computed when read, each alone: a send reads one, where moto built
  them all (counting the messages, writing the policy's JSON) for every message;
- the retention check reads the queue's retention period, not all its attributes;
- a receive walks the messages lazily and stops when it has its batch, reading the clock once, and
  hands out a shallow copy of each message (moto deep-copied it, for the attribute filter that
  only replaces the copy's attribute dict);
- a delete finds the message by its receipt handle in an index, and removes just that message;
- a receipt handle (185 random lowercase letters, as moto makes it) is drawn in one call;
- a queue's attribute names are converted to its fields once per name, not on every send (an
  EventBridge delivery to a queue read all its attributes);
- a standard queue that never held a message with a group does not walk its in-flight messages to
  find their groups on each receive (there are none);
- ReceiveMessage and DeleteMessageBatch answers made of strings only are written with ``json.dumps``
  for SQS's JSON protocol (the query protocol's XML, and anything holding a binary value, are moto's
  serializer's); tests compare the answers with moto's.
"""

from __future__ import annotations

import functools
import json
import threading
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

RECEIPT_HANDLE_LENGTH = 185  # moto's
_COUNTED = {
    "ApproximateNumberOfMessages": "approximate_number_of_messages",
    "ApproximateNumberOfMessagesNotVisible": "approximate_number_of_messages_not_visible",
    "ApproximateNumberOfMessagesDelayed": "approximate_number_of_messages_delayed",
}

_lock = threading.Lock()
_installed: dict[str, Any] = {}
# receipt handle -> the message it was handed out for (moto's Message, never a copy)
_by_handle: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def _value(value: Any) -> Any:
    return str(value).lower() if isinstance(value, bool) else value


class QueueAttributes(Mapping[str, Any]):
    """A queue's attributes as moto's ``Queue.attributes`` gives them, each computed when read: a
    send reads one of them (``ContentBasedDeduplication``), where moto built them all, the queue's
    policy (a JSON document written out anew) among them, for every message."""

    def __init__(self, queue: Any):
        self._queue = queue
        self._plain = set(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            self._plain.update(queue.FIFO_ATTRIBUTES)
        if queue.kms_master_key_id:
            self._plain.update(queue.KMS_ATTRIBUTES)

    def __getitem__(self, name: str) -> Any:
        if name not in self._plain:
            raise KeyError(name)
        queue = self._queue
        if name in _COUNTED:
            return _value(getattr(queue, _COUNTED[name]))
        if name == "RedrivePolicy" and queue.redrive_policy:
            import json

            return json.dumps(queue.redrive_policy)
        return _value(getattr(queue, _field(name)))

    def __iter__(self) -> Iterator[str]:
        queue = self._queue
        names = list(queue.BASE_ATTRIBUTES)  # in moto's order, the counts last
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        yield from (n for n in names if n not in _COUNTED)
        yield from (n for n in names if n in _COUNTED)

    def __len__(self) -> int:
        return len(self._plain)


class _VisibleMessages:
    """``Queue.messages`` as a view: iterated lazily (a receive stops at its batch), counted on demand."""

    def __init__(self, queue: Any):
        self._queue = queue

    def __iter__(self) -> Iterator[Any]:
        from moto.core.utils import unix_time_millis

        # moto's Message.visible and .delayed, with the clock read once per receive, not twice
        # per message. The list is read by position, not copied: a delete made meanwhile by
        # another request may make this receive skip a message, never return one twice.
        messages = self._queue._messages
        now = unix_time_millis()
        i = 0
        while True:
            try:
                message = messages[i]
            except IndexError:
                return
            i += 1
            if now > message.visible_at and not now < message.delayed_until:
                yield message

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return next(iter(self), None) is not None


@functools.lru_cache(maxsize=256)
def _field(name: str) -> str:
    """The queue's field for an attribute name (moto converts the name on every read: a send
    read all of a queue's attributes, most of its cost)."""
    from moto.core.utils import camelcase_to_underscores

    return camelcase_to_underscores(name)


def _attributes(queue: Any) -> QueueAttributes:
    return QueueAttributes(queue)


def install() -> None:
    """Patch moto's SQS models (process-wide; idempotent)."""
    import moto.sqs.models as models
    from moto.sqs.models import Message, Queue, SQSBackend

    with _lock:
        if _installed:
            return
        _installed.update(
            receipt_handle=models.generate_receipt_handle,
            deepcopy=models.deepcopy,
            attributes=Queue.__dict__["attributes"],
            messages=Queue.__dict__["messages"],
            add_message=Queue.add_message,
            delete_message=Queue.delete_message,
            mark_received=Message.mark_received,
            retention=SQSBackend.is_message_valid_based_on_retention_period,
            pending_groups=Queue.__dict__["pending_message_groups"],
        )
        original_add, original_delete, original_mark = Queue.add_message, Queue.delete_message, Message.mark_received

        def add_message(self: Any, message: Any) -> None:
            if message.group_id is not None:
                self._bulk_restore_grouped = True  # the in-flight groups must be looked for (_pending_groups)
            original_add(self, message)
            message._bulk_restore_queue = weakref.ref(self)  # which queue holds it, for the delete below

        def mark_received(self: Any, visibility_timeout: int | None = None) -> None:
            original_mark(self, visibility_timeout)
            _by_handle[self.receipt_handle] = self

        def delete_message(self: Any, receipt_handle: str) -> None:
            message = _by_handle.get(receipt_handle)
            holder = getattr(message, "_bulk_restore_queue", None)
            if message is None or holder is None or holder() is not self or receipt_handle in self.deleted_messages:
                original_delete(self, receipt_handle)  # moto's own walk: unknown, stale or already deleted handles
                return
            self.pending_messages.discard(message)
            self.deleted_messages.update(message.all_receipt_handles)
            try:
                self._messages.remove(message)  # by identity: moto's Message has no __eq__
            except ValueError:
                pass  # removed meanwhile by another delete of the same message

        def retention_ok(self: Any, queue_name: str, message: Any) -> bool:
            from moto.core.utils import unix_time

            period = self.get_queue(queue_name).message_retention_period
            return int(period) + message.sent_timestamp / 1000 > unix_time()

        global _JsonResult
        from moto.core.responses import ActionResult
        from moto.sqs.responses import SQSResponse

        if _JsonResult is None:
            _JsonResult = _make_json_result_class()
            ActionResultType.append(ActionResult)
        for name in JSON_ANSWERS:
            _installed[f"response.{name}"] = SQSResponse.__dict__[name]
            setattr(SQSResponse, name, _answered_as_json(_installed[f"response.{name}"]))
        Queue.attributes = property(_attributes)  # type: ignore[assignment]
        Queue.messages = property(_VisibleMessages)  # type: ignore[assignment]
        Queue.pending_message_groups = property(_pending_groups)  # type: ignore[assignment]
        Queue.add_message = add_message  # type: ignore[method-assign]
        Queue.delete_message = delete_message  # type: ignore[method-assign]
        Message.mark_received = mark_received  # type: ignore[method-assign]
        SQSBackend.is_message_valid_based_on_retention_period = retention_ok  # type: ignore[method-assign]
        models.generate_receipt_handle = receipt_handle
        models.deepcopy = _received_copy


def _pending_groups(queue: Any) -> set[str]:
    """``Queue.pending_message_groups`` from a copy of the in-flight set (``set.copy`` runs in C,
    under the interpreter lock): a receive is not gated (a long poll waits inside moto), and moto's
    comprehension over the live set failed with "Set changed size during iteration" when a gated
    request received or deleted a message meanwhile (24 receives answered 500 in a 100,000-object run)."""
    if not queue.fifo_queue and not getattr(queue, "_bulk_restore_grouped", False):
        return set()  # no message with a group was ever added here: none in flight either (a standard queue's receive read them all)
    return {message.group_id for message in set.copy(queue._pending_messages) if message.group_id is not None}


def _received_copy(value: Any, memo: Any = None) -> Any:
    """``deepcopy`` as moto's SQS models use it: a message handed out by a receive is copied
    shallowly (its attribute filter replaces the copy's ``message_attributes`` and nothing else is
    changed on it); anything else is deep-copied."""
    import copy

    from moto.sqs.models import Message

    if type(value) is Message:
        return copy.copy(value)
    return copy.deepcopy(value, memo)


_LETTERS = bytes(range(ord("a"), ord("z") + 1))
_BYTE_TO_LETTER = bytes(_LETTERS[b % 26] for b in range(234)) + bytes(22)  # 234 = 9 x 26: every letter equally likely
_UNUSED_BYTES = bytes(range(234, 256))


def receipt_handle() -> str:
    """moto's receipt handle: 185 random lowercase letters, each as likely as the others, from moto's
    seedable random. Drawn as random bytes turned into letters in C (bytes past 9 x 26 are dropped,
    so that no letter is likelier), not a letter at a time: it was a fifth of a receive's time."""
    from moto.moto_api._internal import mock_random

    letters = b""
    while len(letters) < RECEIPT_HANDLE_LENGTH:
        letters += mock_random.randbytes(RECEIPT_HANDLE_LENGTH + 24).translate(_BYTE_TO_LETTER, _UNUSED_BYTES)
    return letters[:RECEIPT_HANDLE_LENGTH].decode("ascii")


# ---- answers written as JSON ---------------------------------------------------------------------

JSON_ANSWERS = ("receive_message", "delete_message_batch")  # the calls a local job makes per batch of messages


def _plain(value: Any) -> bool:
    """Made of dicts, lists and strings (and booleans) only: JSON writes it as moto's serializer does.
    Anything else (a binary attribute value, a number, a timestamp, None) is the serializer's to write."""
    kind = type(value)
    if kind is str or kind is bool:
        return True
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if kind is list:
        return all(_plain(v) for v in value)
    return False


def _answered_as_json(original: Any) -> Any:
    def action(self: Any) -> Any:
        answer = original(self)
        if type(answer) is ActionResultType[0] and isinstance(answer._result, dict) and _plain(answer._result):
            answer.__class__ = _JsonResult
        return answer

    action.__wrapped__ = original  # type: ignore[attr-defined]
    return action


ActionResultType: list[Any] = []  # moto's ActionResult, once installed


def _make_json_result_class() -> Any:
    from moto.core.responses import ActionResult

    class JsonResult(ActionResult):  # type: ignore[misc, valid-type]
        """A plain answer (``_plain``): JSON written directly when the client speaks SQS's JSON
        protocol (moto's generic serializer walks each member against the output shape: a third of
        a receive's time); the query protocol's XML is left to moto."""

        def execute_result(self, context: Any) -> Any:
            from moto.core.serialize import JSONSerializer

            if context.serializer_class is not JSONSerializer:
                return super().execute_result(context)
            content_type = f"application/x-amz-json-{context.service_model.metadata.get('jsonVersion', '1.0')}"
            return 200, {"Content-Type": content_type}, json.dumps(self._result)

    return JsonResult


_JsonResult: Any = None


def uninstall() -> None:
    import moto.sqs.models as models
    from moto.sqs.models import Message, Queue, SQSBackend

    with _lock:
        if not _installed:
            return
        from moto.sqs.responses import SQSResponse

        for name in JSON_ANSWERS:
            setattr(SQSResponse, name, _installed[f"response.{name}"])
        models.generate_receipt_handle = _installed["receipt_handle"]
        models.deepcopy = _installed["deepcopy"]
        Queue.attributes = _installed["attributes"]  # type: ignore[assignment]
        Queue.messages = _installed["messages"]  # type: ignore[assignment]
        Queue.pending_message_groups = _installed["pending_groups"]  # type: ignore[assignment]
        Queue.add_message = _installed["add_message"]  # type: ignore[method-assign]
        Queue.delete_message = _installed["delete_message"]  # type: ignore[method-assign]
        Message.mark_received = _installed["mark_received"]  # type: ignore[method-assign]
        SQSBackend.is_message_valid_based_on_retention_period = _installed["retention"]  # type: ignore[method-assign]
        _installed.clear()


def installed() -> bool:
    return bool(_installed)


# ---- Lambda's SQS pollers, inside the service ----------------------------------------------------

POLL_PATH = "/_bulk_restore/sqs"
MAX_POLL_MESSAGES = 10_000  # the most one internal receive hands out (a batch of Lambda's largest BatchSize)


def poll_request(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """POST /_bulk_restore/sqs?Action=ReceiveMessage|DeleteMessageBatch: an event source mapping's
    receives and deletes, a batch in one request.

    Lambda polls a mapping's queue from inside AWS, 10 messages to a ReceiveMessage and to a
    DeleteMessageBatch. Here the function process polls the endpoint; over SQS's API that cost a
    request, its signing and its parsing per 10 messages on both sides (a tenth of a request per
    object of a job, each way). This path makes the same calls on moto's backend, a batch at a
    time; each request names ``QueueUrl`` and the queue's ``Region``:
    - ReceiveMessage ``{"MaxNumberOfMessages" (1 to 10,000; 10 at most on a FIFO queue),
      "VisibilityTimeout"}``: moto's receive (no wait) of that many messages at most, each as
      SQS's JSON answer has it with ``AttributeNames`` and ``MessageAttributeNames`` ``All`` (a
      binary attribute value in base64, as on the wire);
    - DeleteMessageBatch ``{"ReceiptHandles": [...]}``: each deleted as DeleteMessageBatch would;
      answers ``{"Failed": [{"ReceiptHandle", "Code", "Message"}]}``.
    An unknown queue, action or body answers 400 with ``{"Code", "Message"}``."""
    from urllib.parse import parse_qs

    action = (parse_qs(environ.get("QUERY_STRING", "")).get("Action") or [""])[-1]
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        document = json.loads(environ["wsgi.input"].read(length) or b"{}")
        if environ.get("REQUEST_METHOD") != "POST" or not isinstance(document, dict):
            raise _PollError("InvalidRequest", "POST a JSON object")
        backend, name = _queue_of(document.get("QueueUrl"), document.get("Region"))
        if action == "ReceiveMessage":
            body: dict[str, Any] = {"Messages": _receive_many(backend, name, document)}
        elif action == "DeleteMessageBatch":
            body = {"Failed": _delete_many(backend, name, document.get("ReceiptHandles"))}
        else:
            raise _PollError("InvalidAction", f"Action must be ReceiveMessage or DeleteMessageBatch, not {action!r}")
        status = "200 OK"
    except _PollError as exc:
        status, body = "400 Bad Request", {"Code": exc.code, "Message": str(exc)}
    except ValueError as exc:
        status, body = "400 Bad Request", {"Code": "InvalidRequest", "Message": f"not JSON: {exc}"}
    except Exception as exc:  # moto's own refusal (a queue gone meanwhile, say): said as SQS would name it
        status, body = "400 Bad Request", {"Code": getattr(exc, "code", type(exc).__name__), "Message": str(exc)}
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


class _PollError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _queue_of(url: Any, region: Any) -> tuple[Any, str]:
    """moto's SQS backend holding the queue at this URL (``.../<account>/<name>``) in ``region``, and its name."""
    from moto.sqs.models import sqs_backends

    parts = url.rstrip("/").split("/") if isinstance(url, str) else []
    if len(parts) < 2 or not parts[-2].isdigit() or len(parts[-2]) != 12:
        raise _PollError("InvalidAddress", f"not a queue URL: {url!r}")
    if not isinstance(region, str) or region not in sqs_backends[parts[-2]].regions:
        raise _PollError("InvalidParameterValue", f"not a region: {region!r}")
    backend = sqs_backends[parts[-2]][region]
    if parts[-1] not in backend.queues:
        raise _PollError("AWS.SimpleQueueService.NonExistentQueue", f"no queue at {url} in {region}")
    return backend, parts[-1]


def _receive_many(backend: Any, name: str, document: dict[str, Any]) -> list[dict[str, Any]]:
    wanted, visibility = document.get("MaxNumberOfMessages"), document.get("VisibilityTimeout")
    if type(wanted) is not int or not 1 <= wanted <= MAX_POLL_MESSAGES:
        raise _PollError("InvalidParameterValue", f"MaxNumberOfMessages must be a whole number from 1 to {MAX_POLL_MESSAGES}")
    if type(visibility) is not int or not 0 <= visibility <= 43_200:
        raise _PollError("InvalidParameterValue", "VisibilityTimeout must be a whole number of seconds from 0 to 43,200")
    # One walk of the queue for the whole batch: a receive walks past the messages in flight (the
    # batch's own, until they are deleted), so receives of 10 walked a batch of 1,000 a hundred
    # times. A FIFO batch is what one receive of 10 gives (Lambda does not batch FIFO queues over a
    # window), so that a message group's next message waits for its batch, as in SQS.
    ask = min(10, wanted) if backend.get_queue(name).fifo_queue else wanted
    return [_rendered(m) for m in backend.receive_message(name, ask, 0, visibility, ["All"])]


def _rendered(message: Any) -> dict[str, Any]:
    """A received message as moto's ReceiveMessage answer writes it (``All`` attributes), in JSON."""
    out: dict[str, Any] = {
        "MessageId": message.id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": message.body_md5,
        "Body": message.body,
    }
    if len(message.message_attributes):
        out["MessageAttributes"] = {name: _attribute_json(value) for name, value in message.message_attributes.items()}
        out["MD5OfMessageAttributes"] = message.attribute_md5
    attributes = {
        "SenderId": message.sender_id,
        "SentTimestamp": str(message.sent_timestamp),
        "ApproximateReceiveCount": str(message.approximate_receive_count),
        "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
    }
    if message.deduplication_id is not None:
        attributes["MessageDeduplicationId"] = message.deduplication_id
    if message.group_id is not None:
        attributes["MessageGroupId"] = message.group_id
    trace = (message.system_attributes or {}).get("AWSTraceHeader")
    if trace and trace.get("StringValue"):
        attributes["AWSTraceHeader"] = trace["StringValue"]
    if message.sequence_number is not None:
        attributes["SequenceNumber"] = message.sequence_number
    out["Attributes"] = attributes
    return out


def _attribute_json(value: dict[str, Any]) -> dict[str, Any]:
    import base64

    out = dict(value)
    if isinstance(out.get("BinaryValue"), bytes | bytearray):
        out["BinaryValue"] = base64.b64encode(out["BinaryValue"]).decode("ascii")
    if out.get("BinaryListValues"):
        out["BinaryListValues"] = [
            base64.b64encode(v).decode("ascii") if isinstance(v, bytes | bytearray) else v for v in out["BinaryListValues"]
        ]
    return out


def _delete_many(backend: Any, name: str, handles: Any) -> list[dict[str, str]]:
    if not isinstance(handles, list) or not handles or not all(isinstance(h, str) for h in handles):
        raise _PollError("InvalidParameterValue", "ReceiptHandles must be a non-empty list of receipt handles")
    failed = []
    for handle in dict.fromkeys(handles):
        try:
            backend.delete_message(name, handle)
        except Exception as exc:  # moto's ReceiptHandleIsInvalid, as DeleteMessageBatch reports it
            failed.append({"ReceiptHandle": handle, "Code": getattr(exc, "code", type(exc).__name__), "Message": str(exc)})
    return failed
