# Private to the wgfleet.wireguard collection: not a public API.
"""The Ansible side shared by wg_backup and wg_restore: database options, the store, the cipher.

The option names and meanings follow community.postgresql, so one set of
connection variables serves both collections.
"""
from __future__ import annotations

import socket

from ansible.module_utils.basic import missing_required_lib

from ._secrets import HAS_CRYPTOGRAPHY, KeyCipher
from ._store import HAS_PSYCOPG2, PSYCOPG2_IMPORT_ERROR, Store

DEFAULT_DB = "wgrest_backup"
SSL_MODES = ["allow", "disable", "prefer", "require", "verify-ca", "verify-full"]


def database_argument_spec() -> dict:
    """The connection options (a fresh dict each call: callers may add to it)."""
    return {
        "login_host": {"type": "str", "default": "", "aliases": ["host"]},
        "login_unix_socket": {"type": "str", "default": "", "aliases": ["unix_socket"]},
        "login_port": {"type": "int", "default": 5432, "aliases": ["port"]},
        "login_user": {"type": "str", "default": "postgres", "aliases": ["login", "user"]},
        "login_password": {"type": "str", "default": "", "no_log": True},
        "db": {"type": "str", "default": DEFAULT_DB, "aliases": ["login_db"]},
        "ssl_mode": {"type": "str", "default": "prefer", "choices": list(SSL_MODES)},
        "ca_cert": {"type": "str", "aliases": ["ssl_rootcert"]},
        "connect_timeout": {"type": "int", "default": 10},
    }


def server_id(params: dict) -> str:
    """The server a snapshot belongs to: ``server_id``, or this host's fully qualified name."""
    return params["server_id"] or socket.getfqdn()


def key_argument_spec() -> dict:
    return {
        "encryption_key": {"type": "str", "no_log": True},
        "encryption_key_file": {"type": "path"},
    }


def connection_params(params: dict) -> dict:
    """psycopg2.connect keyword arguments from the module options (empty ones left to libpq's defaults)."""
    host = params.get("login_unix_socket") or params.get("login_host")
    out = {
        "host": host,
        "port": params.get("login_port"),
        "user": params.get("login_user"),
        "password": params.get("login_password"),
        "dbname": params.get("db") or DEFAULT_DB,
        "sslmode": params.get("ssl_mode"),
        "sslrootcert": params.get("ca_cert"),
        "connect_timeout": params.get("connect_timeout"),
    }
    return {k: v for k, v in out.items() if v not in (None, "")}


def check_libraries(module) -> None:
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=str(PSYCOPG2_IMPORT_ERROR))
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"))


def make_cipher(params: dict) -> KeyCipher | None:
    if params.get("encryption_key"):
        return KeyCipher.from_base64(params["encryption_key"])
    if params.get("encryption_key_file"):
        return KeyCipher.from_file(params["encryption_key_file"])
    return None


def open_store(params: dict, allow_plaintext_keys: bool = False) -> Store:
    return Store(connection_params(params), make_cipher(params), allow_plaintext_keys=allow_plaintext_keys)
