"""Counting how often moto's own code is reached while a test runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def counting(cls: type, name: str) -> Iterator[list[int]]:
    """Count reads of a property (or calls of a method) of the class ``cls`` while inside: ``[count]``."""
    original = cls.__dict__[name]
    calls = [0]
    if isinstance(original, property):

        def read(self: Any, _get: Callable[[Any], Any] = original.fget) -> Any:  # type: ignore[assignment]
            calls[0] += 1
            return _get(self)

        setattr(cls, name, property(read))
    else:

        def call(self: Any, *args: Any, _f: Callable[..., Any] = original, **kwargs: Any) -> Any:
            calls[0] += 1
            return _f(self, *args, **kwargs)

        setattr(cls, name, call)
    try:
        yield calls
    finally:
        setattr(cls, name, original)
