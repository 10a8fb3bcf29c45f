"""A vault job's archives as the planner reads them: ids given in the request, or one per line of
a manifest (the first column of a CSV, as a vault inventory's CSV has it), each with its S3 key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bulk_restore.domain.model import ManifestError
from bulk_restore.domain.vault import ARCHIVE_ID_RE, KeyFrom, KeyRules, archive_key

MAX_INLINE_ARCHIVES = 1000  # ids in the create-job request itself; more go in a manifest
_HEADERS = {"archiveid", "archive_id", "archive id"}


def is_archive_id(text: str) -> bool:
    return ARCHIVE_ID_RE.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class VaultRow:
    """One archive to move: where the planner found it, and the S3 key it goes to."""

    line: int
    archive_id: str
    key: str
    fields: dict[str, Any] = field(default_factory=dict)  # what else is known of it (description, size...)


@dataclass(frozen=True, slots=True)
class VaultSkip:
    """An archive the job leaves in the vault (its filter said so): SKIPPED with the reason."""

    line: int
    archive_id: str
    reason: str


def vault_manifest_row(number: int, text: str, prefix: str = "") -> VaultRow | ManifestError | None:
    """A manifest line as an archive (named by its id under ``prefix``), an error saying what is
    wrong with it, or None for a header or an empty line."""
    first = text.split(",", 1)[0].strip().strip('"').strip()
    if not first:
        return None
    if number == 1 and first.lower() in _HEADERS:
        return None
    if not is_archive_id(first):
        shown = first if len(first) <= 80 else f"{first[:80]}..."
        return ManifestError(number, f"{shown!r} is not a Glacier archive id (letters, digits, - and _; up to 1,024)", text[:200])
    return VaultRow(number, first, archive_key(first, "", KeyRules(prefix=prefix, key_from=KeyFrom.ARCHIVE_ID)).key)
