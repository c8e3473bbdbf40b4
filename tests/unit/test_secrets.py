"""Keys at rest: AES-GCM sealing, key ids, and errors that never carry a key."""
from __future__ import annotations

import base64

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys, _secrets
from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import (
    DamagedSecretError,
    KeyCipher,
    KeyMismatchError,
    SecretError,
    generate_key,
)

CONTEXT = b"server_key\x1fsrv\x1fwg0"


def test_seal_and_open_round_trip():
    cipher = KeyCipher.from_base64(generate_key())
    secret = _keys.generate_private_key()
    blob = cipher.seal(secret, CONTEXT)
    assert secret.encode() not in blob, "private key stored in clear"
    assert base64.b64decode(secret) not in blob, "raw private key stored in clear"
    assert cipher.open(blob, CONTEXT) == secret
    # A fresh nonce each time: equal keys do not show as equal ciphertexts.
    assert cipher.seal(secret, CONTEXT) != blob


def test_wrong_key_is_told_apart_from_damage():
    secret = _keys.generate_private_key()
    right, wrong = KeyCipher.from_base64(generate_key()), KeyCipher.from_base64(generate_key())
    blob = right.seal(secret, CONTEXT)
    with pytest.raises(KeyMismatchError) as info:
        wrong.open(blob, CONTEXT)
    assert info.value.stored_key_id == right.key_id
    assert secret not in str(info.value), "private key leaked"
    damaged = bytearray(blob)
    damaged[-1] ^= 1
    with pytest.raises(DamagedSecretError):
        right.open(bytes(damaged), CONTEXT)
    # Bound to its row: the same blob under another row's context does not open.
    with pytest.raises(DamagedSecretError):
        right.open(blob, b"server_key\x1fsrv\x1fwg1")


def test_bad_encryption_keys_are_refused_without_echo():
    for bad in ("", "not base64!", base64.b64encode(b"short").decode(), base64.b64encode(bytes(33)).decode()):
        with pytest.raises(SecretError) as info:
            KeyCipher.from_base64(bad)
        assert "32 bytes" in str(info.value)
        if bad:
            assert bad not in str(info.value), "bad key echoed"
    assert issubclass(SecretError, WgError)


def test_from_file(tmp_path):
    key = generate_key()
    path = tmp_path / "key"
    path.write_text(key + "\n")
    assert KeyCipher.from_file(str(path)).key_id == KeyCipher.from_base64(key).key_id
    with pytest.raises(SecretError, match="cannot read"):
        KeyCipher.from_file(str(tmp_path / "missing"))
    path.write_text("garbage")
    with pytest.raises(SecretError, match="does not hold 32 bytes"):
        KeyCipher.from_file(str(path))


def test_repr_shows_only_the_key_id():
    key = generate_key()
    cipher = KeyCipher.from_base64(key)
    assert key not in repr(cipher), "encryption key leaked in repr"
    assert cipher.key_id.hex() in repr(cipher)


def test_plaintext_needs_explicit_permission():
    secret = _keys.generate_private_key()
    with pytest.raises(SecretError, match="allow_plaintext_keys"):
        _secrets.seal(None, secret, CONTEXT, allow_plaintext=False)
    blob = _secrets.seal(None, secret, CONTEXT, allow_plaintext=True)
    assert _secrets.unseal(None, blob, CONTEXT) == secret
    sealed = KeyCipher.from_base64(generate_key()).seal(secret, CONTEXT)
    with pytest.raises(KeyMismatchError, match="no encryption_key"):
        _secrets.unseal(None, sealed, CONTEXT)


def test_digest_is_keyed():
    a, b = KeyCipher.from_base64(generate_key()), KeyCipher.from_base64(generate_key())
    assert _secrets.digest(a, b"x") == _secrets.digest(a, b"x")
    assert _secrets.digest(a, b"x") != _secrets.digest(b, b"x")
    assert _secrets.digest(None, b"x") != _secrets.digest(a, b"x")
