# Private to the wgfleet.wireguard collection: not a public API.
"""WireGuard keys: validation, public-key derivation and generation.

Keys are handled in Python with ``cryptography`` (X25519) where the library is
installed, so the wgrest-sync daemon and the restore path can derive public keys
in containers without WireGuard tools. Only the raw-key API that every
distribution's package has is used (``private_bytes(Raw, Raw, NoEncryption())``,
not 40's ``private_bytes_raw()``): Debian 11 ships 3.3, RHEL 9 36, Debian 12 38.
Without the library, ``wg genkey``/``wg pubkey`` do the same; every WireGuard
host has them.
"""
from __future__ import annotations

import base64
import binascii
import functools
import subprocess

try:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

    HAS_CRYPTOGRAPHY = True
except ImportError:  # the wg tool takes over
    HAS_CRYPTOGRAPHY = False

from ._errors import REDACTED, WgError, WgValueError, remember_secret, shown

KEY_LEN = 32


@functools.lru_cache(maxsize=1 << 16)
def _decode(value: str) -> bytes | None:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != KEY_LEN or base64.b64encode(raw).decode() != value:
        return None
    return raw


def key_bytes(value) -> bytes | None:
    """The 32 raw bytes of a base64 WireGuard key, or None when it is not one."""
    if not isinstance(value, str) or len(value) != 44 or not value.endswith("="):
        return None
    return _decode(value)


def check_key(option: str, value, secret: bool = False) -> str:
    """Return ``value`` when it is a WireGuard key; raise naming ``option`` otherwise.

    A secret value is never echoed back, not even when it is malformed; a
    valid one is remembered by the run's secret guard (see ``_errors``).
    """
    if key_bytes(value) is None:
        what = REDACTED if secret else shown(value)
        raise WgValueError(f"{option}: {what} is not a WireGuard key (44 characters of base64 encoding 32 bytes)")
    if secret:
        remember_secret(value)
    return value


def _wg(args: list[str], stdin: str | None = None) -> str:
    try:
        proc = subprocess.run(["wg", *args], input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise WgError("keys: neither the Python library cryptography nor the wg tool (wireguard-tools) is "
                      "installed; install one of them") from None
    if proc.returncode != 0:
        # wg's message about a bad key never holds the key; ours adds nothing of it either.
        raise WgError(f"keys: wg {args[0]} failed (rc={proc.returncode})")
    return proc.stdout.strip()


def public_key(private_key: str) -> str:
    raw = key_bytes(private_key)
    if raw is None:
        raise WgValueError(f"private_key: {REDACTED} is not a WireGuard key")
    remember_secret(private_key)
    if not HAS_CRYPTOGRAPHY:
        return _wg(["pubkey"], stdin=private_key + "\n")
    pub = X25519PrivateKey.from_private_bytes(raw).public_key()
    return base64.b64encode(pub.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def generate_private_key() -> str:
    """A new private key, clamped as ``wg genkey`` clamps it."""
    if not HAS_CRYPTOGRAPHY:
        key = _wg(["genkey"])
        remember_secret(key)
        return check_key("private_key", key, secret=True)
    raw = bytearray(X25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
    raw[0] &= 248
    raw[31] = (raw[31] & 127) | 64
    key = base64.b64encode(bytes(raw)).decode()
    remember_secret(key)
    return key


def url_safe(key: str) -> str:
    """The form wgrest uses in URLs: URL-safe base64 keeping the ``=`` padding."""
    return key.replace("+", "-").replace("/", "_")


def from_url_safe(key: str) -> str:
    return key.replace("-", "+").replace("_", "/")
