"""Hostile writer of the database against a restore's fast path and the schema version check: every forgery is a
StoreError naming no key (base64, hex, or their first 20 characters), never another exception or a loaded key."""
from __future__ import annotations

import base64
import re

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _store_rows
from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import KeyCipher, generate_key
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store_types import StoreError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer

CIPHER = KeyCipher.from_base64(generate_key())
OTHER = KeyCipher.from_base64(generate_key())
SERVER_KEY = base64.b64encode(bytes(range(32))).decode()
PEERS = tuple(Peer(public_key=base64.b64encode(bytes([i]) * 32).decode(), allowed_ips=(f"10.9.0.{i}/32",),
                   preshared_key=base64.b64encode(bytes([150 + i]) * 32).decode(), name=f"peer {i}")
              for i in range(1, 5))
B_PEERS = tuple(Peer(public_key=p.public_key, allowed_ips=p.allowed_ips,
                     preshared_key=base64.b64encode(bytes([50 + i]) * 32).decode(), name=p.name)
                for i, p in enumerate(PEERS))
SECRETS = [SERVER_KEY, *(p.preshared_key for p in PEERS + B_PEERS)]


def no_key_in(message: str) -> None:
    for secret in SECRETS:
        raw = base64.b64decode(secret)
        for form in (secret, secret[:20], raw.hex(), raw.hex()[:20]):
            assert form not in message, "a key in the message"


@pytest.fixture
def store(pg_server, pg_db):
    s = Store(pg_server.params(pg_db), CIPHER)
    s.migrate()
    s.save_state("srv", {"wg0": Interface(private_key=SERVER_KEY, listen_port=51820, peers=PEERS)})
    s.save_state("srvb", {"wg0": Interface(private_key=SERVER_KEY, listen_port=51820, peers=B_PEERS)})
    yield s
    s.close()


VICTIM = "server_id = 'srv' AND public_key = %(key)s AND valid_to IS NULL"
FORGED = {
    "another_peers_psk": f"UPDATE peers SET preshared_key = (SELECT preshared_key FROM peers WHERE server_id = 'srv'"
                         f" AND public_key = %(other)s) WHERE {VICTIM}",
    "server_b_psk_same_peer": f"UPDATE peers SET preshared_key = (SELECT preshared_key FROM peers WHERE server_id ="
                              f" 'srvb' AND public_key = %(key)s) WHERE {VICTIM}",
    "plain_header_byte_0": f"UPDATE peers SET preshared_key = '\\x00'::bytea || convert_to(%(psk)s, 'UTF8') WHERE {VICTIM}",
    "plain_header_on_sealed_body": f"UPDATE peers SET preshared_key = overlay(preshared_key placing '\\x00'::bytea"
                                   f" from 1) WHERE {VICTIM}",
    "format_byte_2": f"UPDATE peers SET preshared_key = overlay(preshared_key placing '\\x02'::bytea from 1) WHERE {VICTIM}",
    "another_key_id": f"UPDATE peers SET preshared_key = overlay(preshared_key placing '\\x0102030405060708'::bytea"
                      f" from 2) WHERE {VICTIM}",
    **{f"first_{n}_bytes": f"UPDATE peers SET preshared_key = substring(preshared_key from 1 for {n}) WHERE {VICTIM}"
       for n in (9, 21, 37)},
    "huge": f"UPDATE peers SET preshared_key = preshared_key || decode(repeat('ab', 5000000), 'hex') WHERE {VICTIM}",
    "empty": f"UPDATE peers SET preshared_key = ''::bytea WHERE {VICTIM}",
    # A text column (a hostile ALTER): odd-length hex, non-hex text, text without the \x prefix.
    "text_column_odd_hex": "ALTER TABLE peers ALTER preshared_key TYPE text USING '\\x' || encode(preshared_key, 'hex');"
                           f" UPDATE peers SET preshared_key = '\\xabc' WHERE {VICTIM}",
    "text_column_non_hex": "ALTER TABLE peers ALTER preshared_key TYPE text USING '\\x' || encode(preshared_key, 'hex');"
                           f" UPDATE peers SET preshared_key = 'not hex at all' WHERE {VICTIM}",
    # Other columns made text by hand, with a value that is not of the column's type.
    "text_keepalive": "ALTER TABLE peers ALTER persistent_keepalive TYPE text;"
                      f" UPDATE peers SET persistent_keepalive = 'often' WHERE {VICTIM}",
    "text_position": f"ALTER TABLE peers ALTER position TYPE text; UPDATE peers SET position = 'first' WHERE {VICTIM}",
    "text_allowed_ips": "ALTER TABLE peers ALTER allowed_ips TYPE text USING array_to_string(allowed_ips, ',')",
}


@pytest.mark.parametrize("name", FORGED)
def test_a_forged_preshared_key_is_refused_with_a_store_error_naming_no_key(store, pg_server, pg_db, name):
    victim, other = PEERS[1], PEERS[2]
    pg_server.admin(FORGED[name], dbname=pg_db,
                    params={"key": victim.public_key, "other": other.public_key, "psk": victim.preshared_key})
    for cipher in (CIPHER, None, OTHER):
        with Store(pg_server.params(pg_db), cipher) as s:
            try:
                loaded = s.load_state("srv")
            except StoreError as exc:
                message = str(exc)
                assert "server 'srv'" in message, message[:300]
                assert len(message) < 500, len(message)
                no_key_in(message)
            else:  # a forged value must never load
                pytest.fail(f"loaded with {'no key' if cipher is None else 'a key'}: {len(loaded[1])} interfaces")


def test_server_b_cipher_against_server_a_rows_is_refused(store, pg_server, pg_db):
    with Store(pg_server.params(pg_db), OTHER) as s, pytest.raises(StoreError, match="does not match") as failure:
        s.load_state("srv")
    no_key_in(str(failure.value))


# -- schema version --------------------------------------------------------------------------------------------

SCHEMAS = {
    "none": "SELECT 1",
    "empty_table": "CREATE TABLE schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL"
                   " DEFAULT now(), description text NOT NULL)",
    "null_version": "CREATE TABLE schema_version (version integer, description text);"
                    " INSERT INTO schema_version VALUES (NULL, 'x')",
    "huge_version": "CREATE TABLE schema_version (version bigint, description text);"
                    " INSERT INTO schema_version VALUES (9223372036854775807, 'x')",
    "text_version": "CREATE TABLE schema_version (version text, description text);"
                    " INSERT INTO schema_version VALUES ('3', 'x')",
    "no_version_column": "CREATE TABLE schema_version (v integer)",
    "a_view": "CREATE VIEW schema_version AS SELECT 1 AS version",
    "a_sequence": "CREATE SEQUENCE schema_version",
}


@pytest.mark.parametrize("name", SCHEMAS)
def test_a_strange_schema_version_gives_a_store_error_on_load(pg_server, pg_db, name):
    pg_server.admin(SCHEMAS[name], dbname=pg_db)
    with Store(pg_server.params(pg_db), CIPHER) as s, pytest.raises(StoreError) as failure:
        s.load_state("srv")
    assert "srv" in str(failure.value) or "schema" in str(failure.value) or "PostgreSQL" in str(failure.value)


@pytest.mark.parametrize("name", SCHEMAS)
def test_migrate_on_a_strange_schema_version_migrates_or_refuses_whole(pg_server, pg_db, name):
    pg_server.admin(SCHEMAS[name], dbname=pg_db)
    before = pg_server.admin("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace",
                             dbname=pg_db)[0][0]
    with Store(pg_server.params(pg_db), CIPHER) as s:
        try:
            s.migrate()
        except StoreError:
            after = pg_server.admin("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace",
                                    dbname=pg_db)[0][0]
            assert after == before, "a refused migration left a half-migrated database"
        else:  # migrated: a save and a load work
            s.save_state("srv", {"wg0": Interface(private_key=SERVER_KEY, peers=PEERS[:1])})
            assert s.load_state("srv")[1]["wg0"].peers == PEERS[:1]


def test_a_login_without_rights_on_schema_version_gets_a_store_error(store, pg_server, pg_db):
    pg_server.admin("DROP ROLE IF EXISTS h_norights; CREATE ROLE h_norights LOGIN PASSWORD 'pw'", dbname=pg_db)
    params = {**pg_server.params(pg_db), "user": "h_norights", "password": "pw"}
    try:
        with Store(params, CIPHER) as s:
            with pytest.raises(StoreError) as failure:
                s.load_state("srv")
            no_key_in(str(failure.value))
            with pytest.raises(StoreError):
                s.migrate()
            with pytest.raises(StoreError):
                s.schema_version()
    finally:
        pg_server.admin(f'REVOKE ALL ON DATABASE "{pg_db}" FROM h_norights', dbname=pg_db)
        pg_server.admin('DROP OWNED BY h_norights', dbname=pg_db)
        pg_server.admin("DROP ROLE h_norights", dbname=pg_db)


# -- the fast path's own edges (from the restore-attack helper) ---------------------------------------------------

def _chain(exc):
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def test_a_refusal_holds_no_unproved_plaintext_in_its_exception_chain(store, pg_server, pg_db):
    """A ciphertext byte flipped by 0x80: its plaintext, decrypted without the tag, is not ASCII. The refusal
    (the general path's, naming the row) must not keep that plaintext (the real key, one bit changed) anywhere in
    its chain: a UnicodeDecodeError keeps the bytes it could not decode, and a handler walking __context__ reads
    them."""
    victim = PEERS[1]
    pg_server.admin(f"UPDATE peers SET preshared_key = set_byte(preshared_key, 30, get_byte(preshared_key, 30) # 128)"
                    f" WHERE {VICTIM}", dbname=pg_db, params={"key": victim.public_key})
    with pytest.raises(StoreError, match=f"peer {re.escape(victim.public_key)} of interface wg0 is damaged") as failure:
        store.load_state("srv")
    for exc in _chain(failure.value):
        held = getattr(exc, "object", b"")
        held = held.decode("latin-1") if isinstance(held, (bytes, bytearray)) else str(held)
        assert sum(a == b for a, b in zip(held, victim.preshared_key)) < 20, type(exc).__name__
        no_key_in(str(exc))


def test_an_endpoint_made_empty_by_sql_loads_as_no_endpoint_on_both_paths(store, pg_server, pg_db, monkeypatch):
    """The digest input writes no endpoint as an empty one, so '' proves as NULL does: both paths give None, what
    the constructor makes of '' (a Peer never holds an empty endpoint)."""
    pg_server.admin(f"UPDATE peers SET endpoint = '' WHERE {VICTIM}", dbname=pg_db, params={"key": PEERS[1].public_key})
    fast = store.load_state("srv")[1]
    monkeypatch.setattr(_store_rows, "_TRUSTED_BUILD", False)
    general = store.load_state("srv")[1]
    saved = {"wg0": Interface(private_key=SERVER_KEY, listen_port=51820, peers=PEERS)}
    assert fast == general == saved
    assert [vars(p) for p in fast["wg0"].peers] == [vars(p) for p in general["wg0"].peers]


def test_a_keepalive_made_null_by_sql_is_refused(store, pg_server, pg_db):
    pg_server.admin("ALTER TABLE peers ALTER persistent_keepalive DROP NOT NULL;"
                    f" UPDATE peers SET persistent_keepalive = NULL WHERE {VICTIM}", dbname=pg_db,
                    params={"key": PEERS[1].public_key})
    with pytest.raises(StoreError, match="is damaged") as failure:
        store.load_state("srv")
    no_key_in(str(failure.value))
    assert store.load_state("srvb")[1]["wg0"].peers == B_PEERS


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "general"])
def test_a_byte_a_sql_ascii_database_let_in_is_refused_and_the_store_goes_on(pg_server, monkeypatch, fast):
    """A database made with ENCODING SQL_ASCII stores any byte: one that is not ASCII in a name is a StoreError
    (not a UnicodeDecodeError), and the same Store then loads another server."""
    name = pg_server.create_database(f"ascii_{'fast' if fast else 'general'}")
    pg_server.admin(f'DROP DATABASE "{name}"')
    pg_server.admin(f"CREATE DATABASE \"{name}\" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    try:
        state = {"wg0": Interface(private_key=SERVER_KEY, listen_port=51820, peers=PEERS)}
        with Store(pg_server.params(name), CIPHER) as s:
            s.migrate()
            s.save_state("srv", state)
            s.save_state("srvb", state)
            pg_server.admin(f"UPDATE peers SET name = E'peer \\xe9' WHERE {VICTIM}", dbname=name,
                            params={"key": PEERS[1].public_key})
            if not fast:
                monkeypatch.setattr(_store_rows, "_TRUSTED_BUILD", False)
            with pytest.raises(StoreError, match="not text in the connection's encoding") as failure:
                s.load_state("srv")
            no_key_in(str(failure.value))
            assert s.load_state("srvb")[1] == state
    finally:
        pg_server.drop_database(name)
