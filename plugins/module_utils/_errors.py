# Private to the wgfleet.wireguard collection: not a public API.
"""Exceptions of the core. Their messages never carry a private or preshared key."""
from __future__ import annotations

import re

# Anything shaped like a WireGuard key (32 bytes of base64), with or without its "=" (a line split at
# its first "=" quotes the key without it). Command output can quote a config line back (`wg` does
# on a line it rejects), and it cannot tell private keys from public ones.
_KEY_SHAPE = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048](?:=|(?![A-Za-z0-9+/=]))")


def scrub_keys(text: str) -> str:
    return _KEY_SHAPE.sub("**redacted**", text)


class WgError(Exception):
    """Something the user can act on; the message is shown as is."""


class WgValueError(WgError, ValueError):
    """Bad input: the message names the option (or file line) and the value."""


class WgCommandError(WgError):
    """An external command (wg, wg-quick, ip) failed."""

    def __init__(self, argv, rc, stderr):
        self.argv = list(argv)
        self.rc = rc
        self.stderr = scrub_keys((stderr or "").strip())
        super().__init__(f"{' '.join(self.argv)} failed (rc={rc}): {self.stderr or 'no output'}")
