"""What client commands print: JSON (the API's answers as they are), aligned tables, CSV."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import IO, Any

Column = tuple[str, Callable[[dict[str, Any]], Any]]


def to_json(doc: Any, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value).replace("\n", " ")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], out: IO[str] | None = None) -> None:
    """Rows under a header, columns aligned (the last one left ragged)."""
    out = out or sys.stdout
    cells = [[cell(get(row)) for _, get in columns] for row in rows]
    headers = [name for name, _ in columns]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for line in [headers, *cells]:
        out.write(
            "  ".join(
                text.ljust(width) if i < len(line) - 1 else text for i, (text, width) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
            + "\n"
        )


def key_values(pairs: Iterable[tuple[str, Any]], out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    pairs = list(pairs)
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        out.write(f"{key.ljust(width)}  {cell(value)}\n")


def flatten(doc: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """A nested answer as dotted keys and plain values (for one whose shape is not known here)."""
    if isinstance(doc, dict) and doc:
        return [pair for key, value in doc.items() for pair in flatten(value, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), doc)]


def csv_rows(rows: Iterable[dict[str, Any]], columns: Sequence[Column], out: IO[str] | None = None, header: bool = True) -> None:
    writer = csv.writer(out or sys.stdout, lineterminator="\n")
    if header:
        writer.writerow([name for name, _ in columns])
    for row in rows:
        writer.writerow(["" if (v := get(row)) is None else v for _, get in columns])


# ---- human units --------------------------------------------------------------------------------


def size(n: float | None) -> str:
    """Bytes in binary units: 1.5 GiB."""
    if n is None:
        return "-"
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            break
        value /= 1024
    return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"


def duration(seconds: float | None) -> str:
    """3h 05m, 4m 10s, 12s."""
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return "-"
    seconds = round(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def when(stamp: str | None) -> str:
    """An API time (ISO 8601, UTC) as "2026-11-21 10:00:03" (UTC, to the second)."""
    if not stamp:
        return "-"
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


_UNITS = {
    "": 1,
    "B": 1,
    "K": 1000,
    "KB": 1000,
    "M": 1000**2,
    "MB": 1000**2,
    "G": 1000**3,
    "GB": 1000**3,
    "T": 1000**4,
    "TB": 1000**4,
    "P": 1000**5,
    "PB": 1000**5,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
    "PIB": 1024**5,
}


def parse_size(text: str) -> int:
    """ "100TiB", "5 GB", "1048576" -> bytes; ValueError naming the units otherwise."""
    raw = text.strip().upper().replace(" ", "")
    number = raw.rstrip("KMGTPIB")
    unit = raw[len(number) :]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in _UNITS or value < 0 or math.isinf(value):
        raise ValueError(f"{text!r} is not a size: give bytes, or a number with B, KB, MB, GB, TB, KiB, MiB, GiB, TiB")
    return int(value * _UNITS[unit])
