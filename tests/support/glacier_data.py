"""What the Glacier tests share: a clock the test moves, and archive bytes that differ per MiB."""

from __future__ import annotations

import hashlib

MIB = 1 << 20


class FakeClock:
    """``clock()`` for the Glacier emulation: it moves only when a test sets ``now``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def data_of(size: int, seed: int = 0) -> bytes:
    """Deterministic test bytes (distinct per MiB)."""
    return b"".join(hashlib.shake_256(b"%d:%d" % (seed, k)).digest(min(MIB, size - k * MIB)) for k in range(-(-size // MIB)))
