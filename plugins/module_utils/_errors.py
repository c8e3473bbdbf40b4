# Private to the wgfleet.wireguard collection: not a public API.
"""Exceptions of the core. Their messages never carry a private or preshared key."""
from __future__ import annotations


class WgError(Exception):
    """Something the user can act on; the message is shown as is."""


class WgValueError(WgError, ValueError):
    """Bad input: the message names the option (or file line) and the value."""


class WgCommandError(WgError):
    """An external command (wg, wg-quick, ip) failed."""

    def __init__(self, argv, rc, stderr):
        self.argv = list(argv)
        self.rc = rc
        self.stderr = (stderr or "").strip()
        super().__init__(f"{' '.join(self.argv)} failed (rc={rc}): {self.stderr or 'no output'}")
