# Private to the wgfleet.wireguard collection: not a public API.
"""Private and preshared keys at rest: authenticated encryption with AES-256-GCM.

The encryption key (32 random bytes, given as base64) never enters the
database. Every sealed value carries a short key id derived from that key, so
a wrong key is told apart from a damaged value and reported in words, never as
a crypto traceback. The associated data binds each value to its place (server,
interface, peer, column): a value copied into another row does not decrypt.

Sealed layout (bytea): ``0x01 | key id (8) | nonce (12) | ciphertext+tag``.
Plain layout, only with ``allow_plaintext_keys``: ``0x00 | utf-8 key``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import stat
import struct

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    HAS_CRYPTOGRAPHY = True
except ImportError:  # the modules report missing_required_lib()
    HAS_CRYPTOGRAPHY = False

from ._errors import WgError, WgValueError, scrub_keys, shown
from ._values import check_path

SEALED = 1
PLAIN = 0
KEY_ID_LEN = 8
NONCE_LEN = 12
HEADER_LEN = 1 + KEY_ID_LEN + NONCE_LEN
TAG_LEN = 16
MAKE_KEY_HINT = "make one with: head -c 32 /dev/urandom | base64"


class SecretError(WgError):
    """A key at rest cannot be sealed or opened; the message never carries a key."""


class KeyMismatchError(SecretError):
    """The value was sealed with another encryption key."""

    def __init__(self, message: str, stored_key_id: bytes | None):
        super().__init__(message)
        self.stored_key_id = stored_key_id


class DamagedSecretError(SecretError):
    """The value is not what was sealed (truncated, altered, or moved to another row)."""


def generate_key() -> str:
    """A new encryption key as base64, as ``encryption_key`` takes it."""
    return base64.b64encode(os.urandom(32)).decode()


# HKDF-SHA256 (RFC 5869) of the fleet's master key: each server's key, so that no server holds a key that
# opens another's state. The server id and a generation (bumped to rotate one server's key alone) are the info.
SERVER_KEY_SALT = b"wgfleet.wireguard fleet master v1"
SERVER_KEY_INFO = b"wgfleet.wireguard server key v1\0"
SERVER_KEY_GENERATION_MAX = 1_000_000


def decode_key(key: str, option: str = "encryption_key") -> bytes:
    """32 bytes from base64 text, or a SecretError naming ``option`` (never quoting the value)."""
    text = key.strip() if isinstance(key, str) else ""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SecretError(f"{option}: is not 32 bytes encoded in base64 ({MAKE_KEY_HINT})")
    return raw


def derive_server_key(master_key: str, server_id: str, generation: int = 1,
                      option: str = "encryption_key") -> str:
    """Server ``server_id``'s encryption key (base64) derived from the fleet's master key (base64).

    Only the controller holds the master; each server gets its own derived key. One HKDF block (L = 32).
    """
    from ._dbconfig import check_server_id  # _dbconfig imports the model; keep this module's imports light

    raw = decode_key(master_key, option)
    check_server_id("server_id", server_id)
    if isinstance(generation, bool) or not isinstance(generation, int) or not 1 <= generation <= SERVER_KEY_GENERATION_MAX:
        raise SecretError(f"generation: {shown(generation)} is not a whole number from 1 to {SERVER_KEY_GENERATION_MAX}")
    prk = hmac.new(SERVER_KEY_SALT, raw, hashlib.sha256).digest()
    info = SERVER_KEY_INFO + str(generation).encode() + b"\0" + server_id.encode()
    return base64.b64encode(hmac.new(prk, info + b"\x01", hashlib.sha256).digest()).decode()


KEY_FILE_MAX = 4096


def read_key_file(path: str) -> bytes:
    """A key file's bytes: a regular file of at most KEY_FILE_MAX bytes. Opened without blocking and checked
    before reading, so that /dev/zero, a FIFO or a huge file given by mistake fails at once instead of hanging
    or filling the memory (ValueError says which)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("is not a regular file")
        if info.st_size > KEY_FILE_MAX:
            raise ValueError(f"is {info.st_size} bytes long, not a key")
        data = os.read(fd, KEY_FILE_MAX + 1)
    finally:
        os.close(fd)
    if len(data) > KEY_FILE_MAX:
        raise ValueError("is longer than a key")
    return data


def key_id_hex(key_id: bytes | None) -> str:
    return bytes(key_id).hex() if key_id else "none"


class KeyCipher:
    """Seals and opens secrets with one AES-256-GCM key."""

    def __init__(self, key: bytes):
        if not HAS_CRYPTOGRAPHY:
            raise SecretError("encryption_key needs the Python library cryptography, which is not installed")
        if len(key) != 32:
            raise SecretError(f"encryption_key: must be 32 bytes encoded in base64 ({MAKE_KEY_HINT})")
        self._aead = AESGCM(key)
        # The block cipher under GCM, for decrypt_unproved(): GCM's counter blocks encrypted in one call.
        self._blocks = Cipher(algorithms.AES(key), modes.ECB())
        # Derived values only: the key itself is kept by the two cryptography objects above and nowhere else.
        self.key_id = hmac.new(key, b"wgfleet.wireguard key id v1", hashlib.sha256).digest()[:KEY_ID_LEN]
        mac_key = hmac.new(key, b"wgfleet.wireguard row digest v1", hashlib.sha256).digest()
        # HMAC-SHA256 (RFC 2104) with the inner and outer pads hashed once: a restore digests every
        # row, and hmac.digest() sets up its pads again on each call (about twice the cost).
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in mac_key.ljust(64, b"\0")))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in mac_key.ljust(64, b"\0")))

    def __repr__(self) -> str:
        return f"KeyCipher(key_id={self.key_id.hex()})"

    @classmethod
    def from_base64(cls, key: str, option: str = "encryption_key") -> KeyCipher:
        return cls(decode_key(key, option))

    @classmethod
    def from_file(cls, path: str, option: str = "encryption_key_file") -> KeyCipher:
        try:
            check_path(option, path)
        except WgValueError as exc:
            raise SecretError(str(exc)) from None
        # The path as messages show it: a careless user may give the key itself here.
        where = scrub_keys(path)
        try:
            text = read_key_file(path).decode("ascii")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not ASCII text"
            raise SecretError(f"{option}: cannot read {where}: {reason}") from None
        except ValueError as exc:
            raise SecretError(f"{option}: {where} {exc} ({MAKE_KEY_HINT})") from None
        try:
            return cls.from_base64(text)
        except SecretError:
            raise SecretError(f"{option}: {where} does not hold 32 bytes encoded in base64 ({MAKE_KEY_HINT})") from None

    def seal(self, plaintext: str, context: bytes) -> bytes:
        nonce = os.urandom(NONCE_LEN)
        header = bytes([SEALED]) + self.key_id + nonce
        return header + self._aead.encrypt(nonce, plaintext.encode(), header[: 1 + KEY_ID_LEN] + context)

    def open(self, blob: bytes, context: bytes) -> str:
        blob = bytes(blob)
        if len(blob) < HEADER_LEN + 16 or blob[0] != SEALED:
            raise DamagedSecretError("the stored value is not an encrypted key")
        stored_id = blob[1 : 1 + KEY_ID_LEN]
        if not hmac.compare_digest(stored_id, self.key_id):
            raise KeyMismatchError(
                f"it was encrypted with the key of id {stored_id.hex()}, not with encryption_key (id {self.key_id.hex()})",
                stored_id,
            )
        nonce = blob[1 + KEY_ID_LEN : HEADER_LEN]
        try:
            return self._aead.decrypt(nonce, blob[HEADER_LEN:], blob[: 1 + KEY_ID_LEN] + context).decode()
        except (InvalidTag, UnicodeDecodeError):
            raise DamagedSecretError("the stored value fails authentication (altered, truncated or moved)") from None

    def decrypt_unproved(self, blobs: bytes, length: int) -> list | None:
        """The plaintexts (bytes, ``length`` each) of values of this key laid end to end, decrypted as AES-GCM
        decrypts (NIST SP 800-38D, 96-bit nonce: the keystream is AES of nonce || 2, nonce || 3, ...) but
        WITHOUT CHECKING THEIR TAGS, all in one call.

        Only for values whose plaintexts a keyed digest then proves before any of them is used (a sealed
        snapshot's state digest covers every preshared key it holds): checking each tag as well is a call per
        value, a third of a restore. None when a header is not this key's or the lengths do not fit; the caller
        then opens each value with :meth:`open`, which checks its tag and says what is wrong.
        """
        size = HEADER_LEN + length + TAG_LEN
        count, extra = divmod(len(blobs), size)
        blocks = -(-length // 16)
        if extra or not count or not 0 < blocks < 254:  # the counter's low byte runs from 2 to blocks + 1
            return None
        # By C loops over strided slices: byte i of every value at once.
        for offset, byte in enumerate(bytes([SEALED]) + self.key_id):
            if blobs[offset::size] != bytes([byte]) * count:
                return None
        span = 16 * blocks  # each value's keystream, and its ciphertext laid out as the keystream is
        counters, ciphertext = bytearray(count * span), bytearray(count * span)
        for block in range(blocks):
            for offset in range(NONCE_LEN):
                counters[16 * block + offset::span] = blobs[1 + KEY_ID_LEN + offset::size]
            counters[16 * block + 15::span] = bytes([block + 2]) * count
        for offset in range(length):
            ciphertext[offset::span] = blobs[HEADER_LEN + offset::size]
        keystream = self._blocks.encryptor().update(bytes(counters))
        plain = (int.from_bytes(ciphertext, "little") ^ int.from_bytes(keystream, "little")).to_bytes(count * span,
                                                                                                      "little")
        return list(struct.unpack(f"{length}s{span - length}x" * count, plain))

    def opener(self):
        """``open`` for many values at once (a restore opens every preshared key): the same checks, fewer steps.

        Anything but a well-formed value of this key goes through ``open``, which says what is wrong.
        """
        decrypt = self._aead.decrypt
        head = bytes([SEALED]) + self.key_id
        minimum = HEADER_LEN + 16

        def open_one(blob: bytes, context: bytes) -> str:
            if len(blob) < minimum or blob[: 1 + KEY_ID_LEN] != head:
                return self.open(blob, context)
            try:
                return decrypt(blob[1 + KEY_ID_LEN : HEADER_LEN], blob[HEADER_LEN:], head + context).decode()
            except (InvalidTag, UnicodeDecodeError):
                raise DamagedSecretError("the stored value fails authentication (altered, truncated or moved)") from None

        return open_one

    def digester(self) -> _RunningHmac:
        """A running keyed digest: ``update()`` as often as needed, then ``digest()``."""
        return _RunningHmac(self._inner.copy(), self._outer)

    def digest(self, data: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class _RunningHmac:
    def __init__(self, inner, outer):
        self._inner, self._outer = inner, outer

    def update(self, data: bytes) -> None:
        self._inner.update(data)

    def digest(self) -> bytes:
        outer = self._outer.copy()
        outer.update(self._inner.digest())
        return outer.digest()


def digester(cipher: KeyCipher | None):
    """A running digest keyed like :func:`digest` (plain SHA-256 without a cipher)."""
    return cipher.digester() if cipher is not None else hashlib.sha256()


def seal(cipher: KeyCipher | None, plaintext: str, context: bytes, allow_plaintext: bool) -> bytes:
    """The value to store: sealed with ``cipher``, or plain when that was allowed."""
    if cipher is not None:
        return cipher.seal(plaintext, context)
    if not allow_plaintext:
        raise SecretError(
            "encryption_key is required to store private and preshared keys "
            "(or set allow_plaintext_keys: true to store them unencrypted)"
        )
    return bytes([PLAIN]) + plaintext.encode()


def make_cipher(key: str | None = None, key_file: str | None = None,
                option: str = "encryption_key") -> KeyCipher | None:
    """The cipher of ``encryption_key`` (base64) or of ``encryption_key_file``; None when neither is given.

    ``option`` names the pair in errors (``previous_encryption_key`` for a key rotation's old key).
    """
    if key:
        return KeyCipher.from_base64(key, option)
    if key_file:
        return KeyCipher.from_file(key_file, option + "_file")
    return None


def unseal(cipher: KeyCipher | None, blob: bytes, context: bytes) -> str:
    """The key in ``blob``. With a cipher, only a value sealed by it opens: a plain one is refused."""
    blob = bytes(blob)
    if blob[:1] == bytes([PLAIN]):
        if cipher is not None:
            raise DamagedSecretError("it is stored in plain text, not encrypted with encryption_key")
        try:
            return blob[1:].decode()
        except UnicodeDecodeError:
            raise DamagedSecretError("the stored plain-text key is not text") from None
    if blob[:1] == bytes([SEALED]):
        if cipher is None:
            raise KeyMismatchError("it is encrypted and no encryption_key was given", blob[1 : 1 + KEY_ID_LEN])
        return cipher.open(blob, context)
    raise DamagedSecretError("the stored value is neither an encrypted nor a plain key")


def digest(cipher: KeyCipher | None, data: bytes) -> bytes:
    """A row's content digest: keyed (HMAC) when encrypting, so it says nothing about the keys it covers."""
    if cipher is not None:
        return cipher.digest(data)
    return hashlib.sha256(data).digest()
