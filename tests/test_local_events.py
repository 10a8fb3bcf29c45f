"""The local EventBridge layer decides a pattern of plain values as moto's matcher does, and leaves
every other pattern to moto (bulk_restore_cli/local/events.py)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk_restore_cli.local import events

WORDS = st.sampled_from(["aws.s3", "Object Restore Completed", "b1", "b2", "x"])
NAMES = st.sampled_from(["source", "detail-type", "detail", "bucket", "name"])
# Patterns: objects of lists of strings mostly, sometimes a number, a prefix filter or an empty list
LEAVES = st.one_of(
    st.lists(WORDS, min_size=1, max_size=3),
    st.lists(WORDS, min_size=1, max_size=2).map(lambda xs: [*xs, 5]),
    st.just([{"prefix": "b"}]),
    st.just([]),
)
PATTERNS = st.recursive(
    st.dictionaries(NAMES, LEAVES, min_size=1, max_size=3),
    lambda inner: st.dictionaries(NAMES, inner, min_size=1, max_size=3),
    max_leaves=6,
)
# Events: objects of strings mostly, sometimes a number, null or an array
VALUES = st.one_of(WORDS, WORDS, st.just(5), st.none(), st.lists(WORDS, max_size=2))
EVENTS = st.recursive(st.dictionaries(NAMES, VALUES, max_size=4), lambda inner: st.dictionaries(NAMES, inner, max_size=4), max_leaves=8)


def moto_matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    from moto.events.models import EventPattern

    events.install()
    original = events._installed["matches_event"]
    return bool(original(EventPattern(None, pattern), event))


@st.composite
def near(draw: st.DrawFn, pattern: dict[str, Any]) -> dict[str, Any]:
    """An event shaped by ``pattern``: mostly one of each field's allowed values, sometimes another
    value, a number, null, an array or nothing; sometimes a field the pattern does not name."""
    event: dict[str, Any] = {}
    for name, allowed in pattern.items():
        if isinstance(allowed, dict):
            choice = draw(st.integers(0, 9))
            if choice < 8:
                event[name] = draw(near(allowed))
            elif choice == 8:
                event[name] = draw(VALUES)
            continue
        choice = draw(st.integers(0, 9))
        words = [w for w in allowed if isinstance(w, str)]
        if choice < 6 and words:
            event[name] = draw(st.sampled_from(words))
        elif choice < 9:
            event[name] = draw(VALUES)
    if draw(st.booleans()):
        event.setdefault(draw(NAMES), draw(VALUES))
    return event


@settings(max_examples=400, derandomize=True, deadline=None, database=None)
@given(st.one_of(st.tuples(PATTERNS, EVENTS), PATTERNS.flatmap(lambda p: st.tuples(st.just(p), near(p)))))
def test_a_decided_pattern_is_decided_as_moto_decides_it(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    pattern, event = case
    decided = events.simple_match(pattern, event)
    if decided is not None:
        assert decided == moto_matches(pattern, event)


COMPLETED = {"source": ["aws.s3"], "detail-type": ["Object Restore Completed"]}
EVENT = {"source": "aws.s3", "detail-type": "Object Restore Completed", "detail": {"bucket": {"name": "b1"}}}


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        (COMPLETED, EVENT, True),  # the stack's completion rule
        (COMPLETED, {**EVENT, "detail-type": "Object Restore Initiated"}, False),
        ({**COMPLETED, "detail": {"bucket": {"name": ["b1", "b2"]}}}, EVENT, True),
        ({**COMPLETED, "detail": {"bucket": {"name": ["b2"]}}}, EVENT, False),
        ({"detail": {"eventName": ["JobStatusChanged"]}}, EVENT, False),  # a field the event lacks
        ({"source": [{"prefix": "aws."}]}, EVENT, None),  # a content filter: moto's
        ({"detail": {"bucket": {"name": ["b1"]}}}, {"detail": {"bucket": {"name": ["b1", "b3"]}}}, None),  # an array: moto's
    ],
)
def test_the_patterns_the_stack_uses_and_those_left_to_moto(pattern: dict[str, Any], event: dict[str, Any], expected: bool | None) -> None:
    assert events.simple_match(pattern, event) is expected
    if expected is not None:
        assert moto_matches(pattern, event) is expected
