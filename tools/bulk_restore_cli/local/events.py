"""The local stack's layer over moto's EventBridge: a rule's pattern of plain values is matched
without moto's serialising, parsing and flattening the event for each rule.

EventBridge matches an event against a pattern field by field: a field whose pattern is a list of
values matches when the event's value is one of them; a field whose pattern is an object matches
the event's object at that field the same way, and every field must match. moto does that on a
flattened copy of the event, made by writing it to JSON, reading it back and flattening it, for
every rule of the bus and every event: the largest part of the cost of an S3 restore's event.

Here a pattern made only of objects and lists of strings is decided directly on the event (a
string field in or not in its list, a missing one not matching). Anything else: numbers, null,
arrays in the event, content filters (prefix, anything-but, exists, numeric, ``$or``...) is left to
moto's matcher, as is the answer when any field of the pattern needs it; tests compare both.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

_lock = threading.Lock()
_installed: dict[str, Any] = {}


def simple_match(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool | None:
    """True or False when ``pattern`` is made of objects and lists of strings and decides ``event``
    on its own; None when moto's matcher must decide."""
    undecided = False
    for name, allowed in pattern.items():
        present = name in event
        value = event.get(name)
        if isinstance(allowed, Mapping):
            if not present:
                return False  # an object pattern never matches a missing field
            if not isinstance(value, Mapping):
                undecided = True
                continue
            inner = simple_match(allowed, value)
            if inner is False:
                return False
            undecided = undecided or inner is None
        elif isinstance(allowed, list) and allowed and all(type(f) is str for f in allowed):
            if not present:
                return False
            if type(value) is not str:
                undecided = True  # an array, a number, null: moto's rules
            elif value not in allowed:
                return False
        else:
            undecided = True
    return None if undecided else True


def install() -> None:
    """Patch moto's EventPattern.matches_event (process-wide; idempotent)."""
    from moto.events.models import EventPattern

    with _lock:
        if _installed:
            return
        original = EventPattern.matches_event
        _installed["matches_event"] = original

        def matches_event(self: Any, event: Any) -> bool:
            pattern = self._pattern
            if pattern and isinstance(pattern, Mapping) and isinstance(event, Mapping):
                decided = simple_match(pattern, event)
                if decided is not None:
                    return decided
            return bool(original(self, event))

        EventPattern.matches_event = matches_event  # type: ignore[method-assign]
