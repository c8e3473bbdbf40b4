# Private to the wgfleet.wireguard collection: not a public API.
"""The store's errors, results and snapshot records, and the ``snapshot`` option's parsing (pure: no database).

Shared by _store.py, _store_plan.py and the store's callers (wg_restore, _fleet, _rekey, _sync).
"""
from __future__ import annotations

import dataclasses
import datetime
import re

from ._errors import WgError, WgValueError, shown


class StoreError(WgError):
    """The store cannot do what was asked; the message names what and never carries a key or password."""


class SaveRefused(StoreError):
    """A guarded save (the sync service's) would drop an interface or replace a private key."""


@dataclasses.dataclass
class SaveResult:
    snapshot_id: int | None
    changed: bool
    counts: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Snapshot:
    id: int
    server_id: str
    created_at: datetime.datetime
    source: str
    key_id: bytes | None
    interface_count: int
    peer_count: int
    format: int = 1
    interface_digests: dict | None = None
    seal: bytes | None = None


# --- options -----------------------------------------------------------------------------------------------

_BIGINT_MAX = (1 << 63) - 1


def not_a_snapshot(value) -> WgValueError:
    """The refusal of a ``snapshot`` value (quoted safely: a key given there by mistake is not shown)."""
    return WgValueError(f"snapshot: {shown(value)} is neither a snapshot id nor an ISO 8601 time "
                        "(e.g. 2024-05-01T12:00:00Z)")


def parse_timestamp(value: str) -> datetime.datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise not_a_snapshot(value) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)  # documented: a time without offset is UTC
    return when


def parse_snapshot(value) -> int | str | None:
    """The ``snapshot`` option: None (the latest), a snapshot id (ASCII digits), or an ISO 8601 time."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise not_a_snapshot(value)
    if re.fullmatch(r"[0-9]+", text, re.ASCII):
        if len(text) > 19 or int(text) > _BIGINT_MAX:
            raise WgValueError(f"snapshot: {text[:25]!r} is too large for a snapshot id")
        return int(text)
    if len(text) > 64 or not text.isprintable():
        raise not_a_snapshot(text)
    parse_timestamp(text)  # refused here, with the option named, rather than by the database
    return text
