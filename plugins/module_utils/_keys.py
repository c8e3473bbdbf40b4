# Private to the wgfleet.wireguard collection: not a public API.
"""WireGuard keys: validation, public-key derivation and generation.

Keys are handled in Python with ``cryptography`` (X25519), not by running
``wg genkey``/``wg pubkey``: the wgrest-sync daemon and the restore path must
derive public keys on hosts and containers that have no WireGuard tools.
"""
from __future__ import annotations

import base64
import binascii
import functools

try:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as exc:  # the modules report missing_required_lib()
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = exc

from ._errors import WgValueError

KEY_LEN = 32
REDACTED = "**redacted**"


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

    A secret value is never echoed back, not even when it is malformed.
    """
    if key_bytes(value) is None:
        shown = REDACTED if secret else repr(value)
        raise WgValueError(
            f"{option}: {shown} is not a WireGuard key (44 characters of base64 encoding 32 bytes)"
        )
    return value


def public_key(private_key: str) -> str:
    raw = key_bytes(private_key)
    if raw is None:
        raise WgValueError(f"private_key: {REDACTED} is not a WireGuard key")
    pub = X25519PrivateKey.from_private_bytes(raw).public_key()
    return base64.b64encode(pub.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def generate_private_key() -> str:
    """A new private key, clamped as ``wg genkey`` clamps it."""
    raw = bytearray(X25519PrivateKey.generate().private_bytes_raw())
    raw[0] &= 248
    raw[31] = (raw[31] & 127) | 64
    return base64.b64encode(bytes(raw)).decode()


def url_safe(key: str) -> str:
    """The form wgrest uses in URLs: URL-safe base64 keeping the ``=`` padding."""
    return key.replace("+", "-").replace("/", "_")


def from_url_safe(key: str) -> str:
    return key.replace("-", "+").replace("_", "/")
