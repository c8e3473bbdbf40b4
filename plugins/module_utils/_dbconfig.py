# Private to the wgfleet.wireguard collection: not a public API.
"""The state database's settings, once for wg_backup, wg_restore and wgrest-sync.

One set of defaults (database ``wgrest_backup``), one list of ssl modes, one
check of every value before it reaches libpq, and one mapping to
``psycopg2.connect`` keyword arguments. The modules name their options after
community.postgresql (``login_host``...), the service after its settings
(``db_host``...): each front end passes its own names, so an error names the
option the user typed. Plain Python (no Ansible).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from ._errors import WgValueError
from ._wgconf import check_text

DEFAULT_DB = "wgrest_backup"
DEFAULT_PORT = 5432
DEFAULT_USER = "postgres"
DEFAULT_SSL_MODE = "prefer"
DEFAULT_CONNECT_TIMEOUT = 10
SSL_MODES = ("allow", "disable", "prefer", "require", "verify-ca", "verify-full")
SERVER_ID_MAX = 255
SETTING_MAX = 4096


def check_setting(option: str, value, secret: bool = False, max_len: int = SETTING_MAX) -> str:
    """A database or service setting: the collection's single-line rule (``#`` allowed), bounded in length."""
    return check_text(option, value, comment_ok=True, secret=secret, max_len=max_len)


def check_server_id(option: str, value) -> str:
    """A server id: 1 to 255 printable characters, no surrounding spaces (it names the server's history)."""
    if value is None or value == "":
        raise WgValueError(f"{option}: must not be empty")
    check_setting(option, value, max_len=SERVER_ID_MAX)
    if value.strip() != value:
        raise WgValueError(f"{option}: {value!r} starts or ends with a space")
    return value


def _check_int(option: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise WgValueError(f"{option}: {value!r} is not a whole number from {low} to {high}")
    return value


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the state lives and how to log in. ``names`` maps each field to the caller's option name."""

    host: str | None = None
    port: int = DEFAULT_PORT
    user: str | None = DEFAULT_USER
    password: str | None = field(default=None, repr=False)
    dbname: str = DEFAULT_DB
    sslmode: str = DEFAULT_SSL_MODE
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    application_name: str | None = None
    names: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        name = self.option
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("port", "connect_timeout", "names") or value is None:
                continue
            check_setting(name(f.name), value, secret=f.name == "password")
        if not self.dbname:
            raise WgValueError(f"{name('dbname')}: must not be empty")
        _check_int(name("port"), self.port, 1, 65535)
        _check_int(name("connect_timeout"), self.connect_timeout, 0, 86400)
        if self.sslmode not in SSL_MODES:
            raise WgValueError(f"{name('sslmode')}: {self.sslmode!r} is not one of {', '.join(SSL_MODES)}")
        for tls_file in ("sslrootcert", "sslcert", "sslkey"):
            path = getattr(self, tls_file)
            # libpq takes "system" for the system's certificate authorities.
            if path and not (tls_file == "sslrootcert" and path == "system") and not os.access(path, os.R_OK):
                raise WgValueError(f"{name(tls_file)}: {path!r} cannot be read")

    def option(self, field_name: str) -> str:
        return self.names.get(field_name, field_name)

    def connect_kwargs(self) -> dict:
        """``psycopg2.connect`` keyword arguments; empty values are left to libpq's defaults."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "names"}
        return {k: v for k, v in out.items() if v not in (None, "")}
