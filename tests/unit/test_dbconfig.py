"""The database settings, server ids and snapshot choices shared by the modules and wgrest-sync (no database)."""
from __future__ import annotations

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils._dbconfig import (
    DEFAULT_DB,
    SSL_MODES,
    DatabaseSettings,
    check_server_id,
)
from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgValueError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store_types import parse_snapshot

LINE_BREAKS = ["\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("bad", ["", "a\x00b", "srv\n", " srv", "srv ", "x" * 256, *(f"a{c}b" for c in LINE_BREAKS)])
def test_server_ids_are_refused_naming_the_option(bad):
    with pytest.raises(WgValueError, match=r"^server_id: "):
        check_server_id("server_id", bad)


@pytest.mark.parametrize("good", ["vpn-eu-1.example.org", "srv 1", "сервер-1", "x" * 255])
def test_server_ids_that_are_fine(good):
    assert check_server_id("server_id", good) == good


@pytest.mark.parametrize(("value", "parsed"), [
    (None, None), ("", None), ("  ", None), ("42", 42), (" 42 ", 42), (7, 7), ("9223372036854775807", 2**63 - 1),
    ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"), ("2024-05-01 12:00:00+02:00", "2024-05-01 12:00:00+02:00"),
    ("2024-05-01T12:00:00Z\n", "2024-05-01T12:00:00Z"),  # surrounding space (a YAML block's last newline) goes
])
def test_snapshot_choices(value, parsed):
    assert parse_snapshot(value) == parsed


@pytest.mark.parametrize("bad", ["²", "٣", "1²", "9223372036854775808", "9" * 5000, "12\x0034", "2024-05-01\x00",
                                 "2024-05-01\nT12:00:00Z", "yesterday", "-1", "1.5", True, 3.5, [1]])
def test_bad_snapshot_choices_name_the_option(bad):
    with pytest.raises(WgValueError, match=r"^snapshot: ") as info:
        parse_snapshot(bad)
    assert len(str(info.value)) < 200


def test_settings_defaults_and_connection_arguments():
    settings = DatabaseSettings(host="db.example.org", password="pw")
    assert settings.dbname == DEFAULT_DB == "wgrest_backup"
    assert settings.connect_kwargs() == {"host": "db.example.org", "port": 5432, "user": "postgres", "password": "pw",
                                         "dbname": "wgrest_backup", "sslmode": "prefer", "connect_timeout": 10}
    assert "pw" not in repr(settings)
    assert set(SSL_MODES) == {"allow", "disable", "prefer", "require", "verify-ca", "verify-full"}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("password", "pw\nx", r"^db_password: \(hidden\) holds a line break or control character \(U\+000A"),
    ("password", "p\x00w", r"^db_password: \(hidden\)"),
    ("host", "db\x00", r"^db_host: 'db\\x00' holds a line break or control character \(U\+0000"),
    ("dbname", "", r"^db_name: must not be empty"),
    ("dbname", 5, r"^db_name: 5 is not a string"),
    ("port", 0, r"^db_port: 0 is not a whole number from 1 to 65535"),
    ("port", True, r"^db_port: True is not"),
    ("port", "54x32", r"^db_port: .54x32. is not"),
    ("connect_timeout", -1, r"^db_connect_timeout: -1 is not"),
    ("sslmode", "sometimes", r"^db_sslmode: 'sometimes' is not one of"),
    ("user", "x" * 5000, r"^db_user: .* is longer than 4096 characters"),
    ("sslrootcert", "/nonexistent/ca.pem", r"^sslrootcert: '/nonexistent/ca.pem' cannot be read"),
])
def test_bad_settings_name_the_callers_option_and_never_the_password(field, value, message):
    names = {f: f"db_{f}" for f in ("host", "port", "user", "password", "dbname", "sslmode", "connect_timeout")}
    names["dbname"] = "db_name"
    with pytest.raises(WgValueError, match=message) as info:
        DatabaseSettings(**{field: value}, names=names)
    if field == "password":
        assert "pw" not in str(info.value) and "p\x00w" not in str(info.value)


def test_the_systems_certificate_authorities_need_no_file():
    assert DatabaseSettings(sslrootcert="system", sslmode="verify-full").connect_kwargs()["sslrootcert"] == "system"
