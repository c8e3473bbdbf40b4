"""Keys at rest: AES-GCM sealing, key ids, and errors that never carry a key."""
from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

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


@pytest.mark.parametrize("size", [0, 1, 55, 64, 200, 10_000])
def test_digest_is_standard_hmac_sha256(size):
    """The digest with precomputed pads is exactly HMAC-SHA256 under the derived key (format-1 rows depend on it)."""
    import hashlib
    import hmac
    import os

    key = generate_key()
    mac_key = hmac.new(base64.b64decode(key), b"wgfleet.wireguard row digest v1", hashlib.sha256).digest()
    data = os.urandom(size)
    assert KeyCipher.from_base64(key).digest(data) == hmac.digest(mac_key, data, "sha256")


def test_a_plain_value_does_not_open_when_a_key_is_given():
    """Someone without the key can write a plain value into the database: with a key, it is refused."""
    secret = _keys.generate_private_key()
    plain = _secrets.seal(None, secret, CONTEXT, allow_plaintext=True)
    with pytest.raises(DamagedSecretError, match="plain text") as info:
        _secrets.unseal(KeyCipher.from_base64(generate_key()), plain, CONTEXT)
    assert secret not in str(info.value)


def test_make_cipher_takes_a_key_or_a_file(tmp_path):
    key = generate_key()
    (tmp_path / "k").write_text(key + "\n")
    assert _secrets.make_cipher() is None
    assert _secrets.make_cipher(key).key_id == _secrets.make_cipher(key_file=str(tmp_path / "k")).key_id


@pytest.mark.parametrize("option", ["encryption_key_file", "previous_encryption_key_file"])
@pytest.mark.parametrize("path", ["key\x00file", "key\nfile", "key\u2028file"])
def test_a_key_file_path_with_a_control_character_is_an_error_naming_the_option(option, path):
    with pytest.raises(SecretError, match=rf"^{option}: .*(line break or control character)"):
        _secrets.make_cipher(None, path, option.replace("_file", ""))


def test_a_key_given_as_the_key_files_path_is_not_echoed():
    """A careless `encryption_key_file: "{{ vault_key }}"` gives the key itself as the path."""
    key = generate_key()
    for option in ("encryption_key", "previous_encryption_key"):
        with pytest.raises(SecretError, match=rf"^{option}_file: cannot read") as info:
            _secrets.make_cipher(None, key, option)
        assert key not in str(info.value)
        assert key.rstrip("=") not in str(info.value)


@settings(max_examples=80, deadline=None)
@given(plaintexts=st.integers(1, 300).flatmap(
    lambda size: st.lists(st.binary(min_size=size, max_size=size), min_size=1, max_size=30)))
def test_many_values_decrypted_at_once_are_what_aes_gcm_decrypts(plaintexts):
    """decrypt_unproved against the library's own AES-GCM (sealed by it, with the raw key): the same plaintexts."""
    raw = os.urandom(32)
    cipher = KeyCipher(raw)
    head = bytes([_secrets.SEALED]) + cipher.key_id
    values = []
    for plaintext in plaintexts:
        nonce = os.urandom(12)
        values.append(head + nonce + AESGCM(raw).encrypt(nonce, plaintext, head + CONTEXT))
    assert cipher.decrypt_unproved(b"".join(values), len(plaintexts[0])) == plaintexts


def test_values_decrypted_at_once_are_not_authenticated_and_others_are_refused():
    cipher = KeyCipher.from_base64(generate_key())
    secrets = [_keys.generate_private_key() for _count in range(3)]
    blobs = [cipher.seal(s, CONTEXT) for s in secrets]
    assert cipher.decrypt_unproved(b"".join(blobs), 44) == [s.encode() for s in secrets]
    # Not authenticated (its caller proves the plaintexts by a keyed digest): a flipped ciphertext bit comes out
    # flipped, where open() refuses it.
    flipped = bytearray(blobs[1])
    flipped[_secrets.HEADER_LEN] ^= 1
    with pytest.raises(DamagedSecretError):
        cipher.open(bytes(flipped), CONTEXT)
    opened = cipher.decrypt_unproved(b"".join([blobs[0], bytes(flipped), blobs[2]]), 44)
    assert opened[1] != secrets[1].encode() and opened[0::2] == [secrets[0].encode(), secrets[2].encode()]
    # Another key's values, a length that does not fit, and no values at all: None, so that open() says why.
    other = KeyCipher.from_base64(generate_key())
    assert other.decrypt_unproved(b"".join(blobs), 44) is None
    assert cipher.decrypt_unproved(b"".join(blobs)[:-1], 44) is None
    assert cipher.decrypt_unproved(b"", 44) is None
    plain = _secrets.seal(None, secrets[0], CONTEXT, allow_plaintext=True)
    assert cipher.decrypt_unproved(plain + bytes(len(blobs[0]) - len(plain)), 44) is None
