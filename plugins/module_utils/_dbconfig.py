# Private to the wgfleet.wireguard collection: not a public API.
"""The state database's settings, once for wg_backup, wg_restore and wgrest-sync.

One set of defaults (database ``wgrest_backup``), one list of ssl modes, one
check of every value before it reaches libpq, and one mapping to
``psycopg2.connect`` keyword arguments. The modules name their options after
community.postgresql (``login_host``...), the service after its settings
(``db_host``...): each front end passes its own names, so an error names the
option the user typed. Plain Python (no Ansible).

Several hosts (a replicated database: libpq's multi-host connection) are one
``host`` value, a list or a comma-separated string, with one port or one per
host. Which host a connection takes depends on its use (``USES``): a writer
takes only the primary (``target_session_attrs=read-write``), a restore the
first host that answers in list order, a report prefers a standby where the
libpq in use knows ``prefer-standby`` (libpq 14 and later; see
``session_attrs``). A single host connects exactly as before.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from ._errors import WgValueError, shown
from ._values import check_int, check_text, check_whole

DEFAULT_DB = "wgrest_backup"
DEFAULT_PORT = 5432
DEFAULT_USER = "postgres"
DEFAULT_SSL_MODE = "prefer"
DEFAULT_CONNECT_TIMEOUT = 10
SSL_MODES = ("allow", "disable", "prefer", "require", "verify-ca", "verify-full")
SERVER_ID_MAX = 255
SETTING_MAX = 4096
# More would be a mistake (a pasted list), not a database: each one costs a connection attempt.
MAX_HOSTS = 16
# What a connection is for -> the libpq session it needs when there are several hosts.
USE_WRITE, USE_RESTORE, USE_REPORT = "write", "restore", "report"
USES = (USE_WRITE, USE_RESTORE, USE_REPORT)
# libpq 14 (PostgreSQL 14's client library) added prefer-standby, standby, primary and read-only.
LIBPQ_PREFER_STANDBY = 140000


def check_setting(option: str, value, secret: bool = False, max_len: int = SETTING_MAX) -> str:
    """A database or service setting: the collection's single-line rule (``#`` allowed), bounded in length."""
    return check_text(option, value, comment_ok=True, secret=secret, max_len=max_len)


def check_server_id(option: str, value) -> str:
    """A server id: 1 to 255 printable characters, no surrounding spaces (it names the server's history)."""
    if value is None or value == "":
        raise WgValueError(f"{option}: must not be empty")
    check_setting(option, value, max_len=SERVER_ID_MAX)
    if value.strip() != value:
        raise WgValueError(f"{option}: {shown(value)} starts or ends with a space")
    return value


def libpq_version() -> int | None:
    """The version of the libpq psycopg2 runs with (e.g. 150018), None without psycopg2."""
    try:
        import psycopg2.extensions
    except ImportError:
        return None
    try:
        return int(psycopg2.extensions.libpq_version())
    except Exception:  # psycopg2 < 2.7 had no run-time query; its build-time version is the next best answer
        return getattr(psycopg2, "__libpq_version__", None)


def session_attrs(use: str, libpq: int | None = None) -> tuple[str, str | None]:
    """``target_session_attrs`` for a connection of ``use`` to several hosts, and a note when libpq falls short.

    Writers: ``read-write`` (libpq 10+: only a host that accepts writes; a standby is skipped). Restores: ``any``
    (libpq 10+), the first host that answers in list order: the primary while it is up (a restore wants the newest
    state, a standby may lag), a standby when it is not. Reports: ``prefer-standby`` on libpq 14 and later
    (Debian 12's libpq 15), else ``any`` (Debian 11's and RHEL 9's libpq 13), which the note says.
    """
    if use == USE_WRITE:
        return "read-write", None
    if use == USE_RESTORE:
        return "any", None
    if use == USE_REPORT:
        version = libpq_version() if libpq is None else libpq
        if version is not None and version >= LIBPQ_PREFER_STANDBY:
            return "prefer-standby", None
        found = f"libpq {version // 10000}" if version else "this libpq"
        return "any", (f"{found} has no target_session_attrs=prefer-standby (libpq 14 and later have it): "
                       "reading from the first host that answers, in list order")
    raise WgValueError(f"use: {shown(use)} is not one of {', '.join(USES)}")


def check_hosts(option: str, value) -> tuple[str, ...]:
    """A host, or several: a list, or one string of comma-separated names (libpq's form). Each entry one line,
    not empty; at most MAX_HOSTS. An empty value (None, "", []) is no host: libpq's default socket."""
    if value is None or value == "" or value == [] or value == ():
        return ()
    if isinstance(value, str):
        check_setting(option, value)
        entries = value.split(",")
    elif isinstance(value, (list, tuple)):
        entries = list(value)
        for entry in entries:
            check_setting(option, entry)
            if "," in entry:
                raise WgValueError(f"{option}: entry {shown(entry)} holds a comma; give each host as its own entry")
    else:
        raise WgValueError(f"{option}: {shown(value)} is not a host name or a list of them")
    if len(entries) > MAX_HOSTS:
        raise WgValueError(f"{option}: {len(entries)} hosts; at most {MAX_HOSTS} are allowed")
    hosts = tuple(e.strip(" \t") for e in entries)
    for index, host in enumerate(hosts, 1):
        if not host:
            raise WgValueError(f"{option}: entry {index} of {shown(value)} is empty")
    return hosts


def check_ports(option: str, value, hosts: int) -> tuple[int, ...]:
    """One port, or one per host (a list, or comma-separated text), each 1 to 65535."""
    if isinstance(value, str):
        check_setting(option, value)
        entries = value.split(",")
    elif isinstance(value, (list, tuple)):
        entries = list(value)
    else:
        entries = [value]
    if not entries or len(entries) > MAX_HOSTS:
        raise WgValueError(f"{option}: {shown(value)} is not one port or one port per host")
    ports = [check_int(option, entry, 1, 65535, leading_zeros=True) for entry in entries]
    if len(ports) > 1 and len(ports) != hosts:
        raise WgValueError(f"{option}: {len(ports)} ports ({', '.join(map(str, ports))}) for {hosts} host"
                           f"{'' if hosts == 1 else 's'}; give one port, or one port per host in the same order")
    return tuple(ports)


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the state lives and how to log in. ``names`` maps each field to the caller's option name.

    ``host`` (one, a list, or comma-separated) and ``port`` (one, or one per host) are normalized to libpq's
    form: ``hosts`` and ``ports`` are the tuples, ``host`` the comma-joined text, ``port`` an int for one port.
    ``use`` (USES) chooses the session a connection to several hosts needs.
    """

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
    use: str = USE_WRITE
    names: dict = field(default_factory=dict, repr=False, compare=False)
    hosts: tuple = field(default=(), init=False, repr=False, compare=False)
    ports: tuple = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self):
        name = self.option
        hosts = check_hosts(name("host"), self.host)
        ports = check_ports(name("port"), self.port, len(hosts))
        object.__setattr__(self, "hosts", hosts)
        object.__setattr__(self, "ports", ports)
        object.__setattr__(self, "host", ",".join(hosts) or None)
        object.__setattr__(self, "port", ports[0] if len(ports) == 1 else ",".join(map(str, ports)))
        if self.use not in USES:
            raise WgValueError(f"use: {shown(self.use)} is not one of {', '.join(USES)}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("host", "port", "connect_timeout", "names", "use", "hosts", "ports") or value is None:
                continue
            check_setting(name(f.name), value, secret=f.name == "password")
        if not self.dbname:
            raise WgValueError(f"{name('dbname')}: must not be empty")
        check_whole(name("connect_timeout"), self.connect_timeout, 0, 86400)
        if self.sslmode not in SSL_MODES:
            raise WgValueError(f"{name('sslmode')}: {shown(self.sslmode)} is not one of {', '.join(SSL_MODES)}")
        for tls_file in ("sslrootcert", "sslcert", "sslkey"):
            path = getattr(self, tls_file)
            # libpq takes "system" for the system's certificate authorities.
            if path and not (tls_file == "sslrootcert" and path == "system") and not os.access(path, os.R_OK):
                raise WgValueError(f"{name(tls_file)}: {shown(path)} cannot be read")

    def option(self, field_name: str) -> str:
        return self.names.get(field_name, field_name)

    def session(self) -> tuple[str | None, str | None]:
        """(target_session_attrs, a note when libpq falls short): none for one host, which connects as always."""
        if len(self.hosts) < 2:
            return None, None
        return session_attrs(self.use)

    def connect_kwargs(self) -> dict:
        """``psycopg2.connect`` keyword arguments; empty values are left to libpq's defaults."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("names", "use", "hosts", "ports")}
        out["target_session_attrs"] = self.session()[0]
        return {k: v for k, v in out.items() if v not in (None, "")}
