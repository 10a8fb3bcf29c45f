"""The local-scale benchmark's CPU reading of the endpoint process (bench/local_scale.py)."""

from __future__ import annotations

import os
import sys

import pytest

from bulk_restore_cli.bench.local_scale import _per_object_ms, cpu_seconds


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_process_s_cpu_time_grows_with_its_work_and_an_absent_process_has_none() -> None:
    first = cpu_seconds(os.getpid())
    assert first is not None and first > 0
    total = 0
    while (cpu_seconds(os.getpid()) or 0) - first < 0.05:  # busy until the kernel has counted 50 ms more
        total += sum(range(10_000))
    assert total > 0
    assert cpu_seconds(2**22 + 12345) is None  # above Linux's largest pid


def test_cpu_per_object_is_in_milliseconds_and_absent_without_both_readings() -> None:
    assert _per_object_ms(10.0, 12.5, 1000) == 2.5
    assert _per_object_ms(None, 12.5, 1000) is None
    assert _per_object_ms(10.0, None, 1000) is None
    assert _per_object_ms(10.0, 11.0, 0) is None
