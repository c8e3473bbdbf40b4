# Private to the wgfleet.wireguard collection: not a public API.
"""The Ansible side shared by wg_backup and wg_restore: database options, the store, the cipher.

The option names and meanings follow community.postgresql, so one set of
connection variables serves both collections. Defaults, checks and the
mapping to a connection live in ``_dbconfig``, shared with wgrest-sync.
"""
from __future__ import annotations

import socket

from ansible.module_utils.basic import missing_required_lib

from . import _dbconfig, _secrets
from ._secrets import HAS_CRYPTOGRAPHY, KeyCipher
from ._store import HAS_PSYCOPG2, PSYCOPG2_IMPORT_ERROR, Store

# DatabaseSettings field -> option name, for error messages.
OPTION_NAMES = {"host": "login_host", "port": "login_port", "user": "login_user", "password": "login_password",
                "dbname": "db", "sslmode": "ssl_mode", "sslrootcert": "ca_cert", "sslcert": "ssl_cert",
                "sslkey": "ssl_key", "connect_timeout": "connect_timeout"}


def database_argument_spec() -> dict:
    """The connection options (a fresh dict each call: callers may add to it)."""
    return {
        # raw: one host, a list, or comma-separated hosts (libpq multi-host); _dbconfig checks each.
        "login_host": {"type": "raw", "default": "", "aliases": ["host"]},
        "login_unix_socket": {"type": "str", "default": "", "aliases": ["unix_socket"]},
        "login_port": {"type": "raw", "default": _dbconfig.DEFAULT_PORT, "aliases": ["port"]},
        "login_user": {"type": "str", "default": _dbconfig.DEFAULT_USER, "aliases": ["login", "user"]},
        "login_password": {"type": "str", "default": "", "no_log": True},
        "db": {"type": "str", "default": _dbconfig.DEFAULT_DB, "aliases": ["login_db"]},
        "ssl_mode": {"type": "str", "default": _dbconfig.DEFAULT_SSL_MODE, "choices": list(_dbconfig.SSL_MODES)},
        "ca_cert": {"type": "str", "aliases": ["ssl_rootcert"]},
        "ssl_cert": {"type": "path"},
        "ssl_key": {"type": "path", "no_log": False},
        "connect_timeout": {"type": "int", "default": _dbconfig.DEFAULT_CONNECT_TIMEOUT},
    }


def server_id(params: dict) -> str:
    """The server a snapshot belongs to: ``server_id``, or this host's fully qualified name."""
    return _dbconfig.check_server_id("server_id", params["server_id"] or socket.getfqdn())


def key_argument_spec() -> dict:
    return {
        "encryption_key": {"type": "str", "no_log": True},
        "encryption_key_file": {"type": "path"},
    }


def database_settings(params: dict, use: str = _dbconfig.USE_WRITE) -> _dbconfig.DatabaseSettings:
    """The module options as checked settings; an error names the option. ``use``: see ``_dbconfig.USES``."""
    names = dict(OPTION_NAMES)
    if params.get("login_unix_socket"):
        names["host"] = "login_unix_socket"
    values = {
        "host": params.get("login_unix_socket") or params.get("login_host") or None,
        "port": params.get("login_port"),
        "user": params.get("login_user") or None,
        "password": params.get("login_password") or None,
        "dbname": params.get("db") or _dbconfig.DEFAULT_DB,
        "sslmode": params.get("ssl_mode") or _dbconfig.DEFAULT_SSL_MODE,
        "sslrootcert": params.get("ca_cert") or None,
        "sslcert": params.get("ssl_cert") or None,
        "sslkey": params.get("ssl_key") or None,
        "connect_timeout": params.get("connect_timeout"),
    }
    return _dbconfig.DatabaseSettings(**{k: v for k, v in values.items() if v is not None}, use=use, names=names)


def connection_params(params: dict, use: str = _dbconfig.USE_WRITE) -> dict:
    """psycopg2.connect keyword arguments from the module options (empty ones left to libpq's defaults)."""
    return database_settings(params, use).connect_kwargs()


def check_libraries(module) -> None:
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=str(PSYCOPG2_IMPORT_ERROR))
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"))


def make_cipher(params: dict) -> KeyCipher | None:
    return _secrets.make_cipher(params.get("encryption_key"), params.get("encryption_key_file"))


_FROM_PARAMS = object()


def open_store(params: dict, allow_plaintext_keys: bool = False, cipher=_FROM_PARAMS,
               use: str = _dbconfig.USE_WRITE) -> Store:
    """The store of the connection options; ``cipher``, when the caller made it already (else from the options).
    ``use``: a writer (the default) connects only to a primary; see ``_dbconfig.USES``. It connects at its first
    transaction: the module's work checks its own options before that."""
    settings = database_settings(params, use)  # every option checked before the key file is read
    if cipher is _FROM_PARAMS:
        cipher = make_cipher(params)
    return Store(settings.connect_kwargs(), cipher, allow_plaintext_keys=allow_plaintext_keys, connect_now=False)
