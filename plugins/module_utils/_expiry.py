# Private to the wgfleet.wireguard collection: not a public API.
"""Peer expiry: one way to read an expiry time, one way to write it, one test of "has it passed".

An expiry is kept in the wg-quick file as the peer's ``# Expires = `` comment line,
always in UTC as ``YYYY-MM-DDTHH:MM:SSZ`` (what :func:`normalize_expiry` returns), so
that the file reads the same on every host and two runs compare it as text.
"""
from __future__ import annotations

import datetime
import re

from ._errors import WgValueError, shown

EXPIRES_COMMENT = "# Expires = "
MAX_EXPIRY = 64
_CANONICAL = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
_DATE_ONLY = re.compile(r"^\d{4}-\d\d-\d\d\Z")
_UTC = datetime.timezone.utc


def normalize_expiry(option: str, value) -> str | None:
    """``value`` (ISO 8601 with a time zone, a date, or a Unix timestamp) as the canonical UTC text.

    None and '' mean no expiry. A date alone is midnight UTC at its start. A time without a
    zone is refused: which midnight would be meant depends on the host.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise WgValueError(f"{option}: {shown(value)} is not a time (ISO 8601 or a Unix timestamp)")
    if isinstance(value, (int, float)):
        try:
            when = datetime.datetime.fromtimestamp(value, tz=_UTC)
        except (OverflowError, OSError, ValueError):
            raise WgValueError(f"{option}: {shown(value)} is not a Unix timestamp that can be used") from None
        return _canonical(when)
    if not isinstance(value, str):
        raise WgValueError(f"{option}: {shown(value)} is not a time (ISO 8601 or a Unix timestamp)")
    text = value.strip(" \t")
    if len(value) > MAX_EXPIRY or not text.isprintable() or not text.isascii():
        raise WgValueError(f"{option}: {shown(value)} is not a time (ISO 8601 such as 2027-01-31T18:00:00Z, "
                           "or a Unix timestamp); it must be one short line")
    if re.fullmatch(r"\d{1,12}(\.\d+)?", text):
        return normalize_expiry(option, float(text))
    if _DATE_ONLY.match(text):
        text += "T00:00:00+00:00"
    try:
        when = datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise WgValueError(f"{option}: {shown(value)} is not a time (ISO 8601 such as 2027-01-31T18:00:00Z, "
                           "or a Unix timestamp)") from None
    if when.tzinfo is None:
        raise WgValueError(f"{option}: {shown(value)} has no time zone; add Z (UTC) or an offset such as +01:00")
    try:
        return _canonical(when.astimezone(_UTC))
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is in the year 10000 in UTC, 0001-01-01T00:00+01:00 in year 0
        raise WgValueError(f"{option}: {shown(value)} is outside the years 1 to 9999 once in UTC") from None


def _canonical(when: datetime.datetime) -> str:
    # Not strftime("%Y"): glibc writes the year 999 as "999", which the canonical form and strptime refuse.
    return f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:{when.minute:02d}:{when.second:02d}Z"


def check_canonical(option: str, value) -> str | None:
    """An expiry as the file and the model keep it (read back from a file: only the canonical form)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _CANONICAL.match(value.strip(" \t")):
        return normalize_expiry(option, value)
    return value.strip(" \t")


def parse_canonical(option: str, text: str) -> str | None:
    """An expiry as a file holds it: the canonical form only (or nothing). A hand-written ``# Expires = 30`` is not
    read as the Unix time 30 (long past: the peer would be revoked), nor a date as its midnight."""
    if text == "":
        return None
    if not _CANONICAL.match(text):
        raise WgValueError(f"{option}: {shown(text)} is not an expiry as written by this collection "
                           "(YYYY-MM-DDTHH:MM:SSZ, in UTC)")
    return text


def has_passed(expires: str | None, now: datetime.datetime | None = None) -> bool:
    """True when the canonical expiry ``expires`` is at or before ``now`` (default: the current UTC time)."""
    if not expires:
        return False
    when = datetime.datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_UTC)
    return when <= (now or datetime.datetime.now(_UTC))
