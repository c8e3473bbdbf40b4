"""Several database hosts (libpq multi-host): the lists that are read, the ones refused before any connection,
and the session each use asks libpq for (no database: a listening socket shows no connection was tried)."""
from __future__ import annotations

import socket

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _db_module
from ansible_collections.wgfleet.wireguard.plugins.module_utils._dbconfig import (
    MAX_HOSTS,
    DatabaseSettings,
    session_attrs,
)
from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgValueError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._sync_settings import ConfigError, load_config

LINE_BREAKS = ["\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
SYNC = {"WGSYNC_SERVER_ID": "srv1", "WGSYNC_WGREST_TOKEN": "tok-hosts-SECRET", "WGSYNC_ALLOW_PLAINTEXT_KEYS": "true",
        "WGSYNC_ENCRYPTION_KEY_FILE": "/nonexistent/wgsync-hosts-key"}


@pytest.mark.parametrize(("host", "port", "hosts", "ports"), [
    ("db1.example.org,db2.example.org", 5432, ("db1.example.org", "db2.example.org"), (5432,)),
    (" db1 , db2 ", "5432, 5433", ("db1", "db2"), (5432, 5433)),
    ("db1,db2", "05432,\t5433 ", ("db1", "db2"), (5432, 5433)),  # leading zeros are decimal, as libpq reads them
    (["db1", "db2", "/run/postgresql"], [5432, "5433", 5434], ("db1", "db2", "/run/postgresql"), (5432, 5433, 5434)),
    (("10.0.0.1", "::1"), (6432,), ("10.0.0.1", "::1"), (6432,)),
    (["db"] * MAX_HOSTS, 5432, ("db",) * MAX_HOSTS, (5432,)),
])
def test_a_list_or_comma_separated_hosts_become_libpqs_form(host, port, hosts, ports):
    settings = DatabaseSettings(host=host, port=port, password="pw")
    assert settings.hosts == hosts and settings.ports == ports
    kwargs = settings.connect_kwargs()
    assert kwargs["host"] == ",".join(hosts)
    assert kwargs["port"] == (ports[0] if len(ports) == 1 else ",".join(map(str, ports)))
    assert kwargs["target_session_attrs"] == "read-write", "a writer must only ever reach the primary"


def test_one_host_connects_exactly_as_before():
    kwargs = DatabaseSettings(host="db.example.org", port=5432).connect_kwargs()
    assert "target_session_attrs" not in kwargs and kwargs["host"] == "db.example.org" and kwargs["port"] == 5432
    assert DatabaseSettings(host=["db.example.org"]).connect_kwargs()["host"] == "db.example.org"


@pytest.mark.parametrize(("use", "libpq", "attrs", "note"), [
    ("write", 110005, "read-write", None), ("write", 170000, "read-write", None),
    ("restore", 130011, "any", None), ("restore", 150018, "any", None),
    ("report", 130011, "any", "libpq 13 has no target_session_attrs=prefer-standby"),  # Debian 11, RHEL 9
    ("report", 110005, "any", "libpq 11 has no"),
    ("report", 140000, "prefer-standby", None), ("report", 150018, "prefer-standby", None),  # Debian 12
])
def test_each_use_asks_for_the_session_its_libpq_can_give(use, libpq, attrs, note):
    got, why = session_attrs(use, libpq)
    assert got == attrs
    assert (why is None) if note is None else why.startswith(note)


def test_restores_take_the_first_host_that_answers():
    params = _params(login_host="db1,db2")
    assert _db_module.connection_params(params, "restore")["target_session_attrs"] == "any"
    assert _db_module.connection_params(params)["target_session_attrs"] == "read-write"


H = "127.0.0.1"  # a host that would answer (the listener below): a refused list must never reach it
BAD_HOSTS = [
    (f"{H},,{H}", r"entry 2 of .* is empty"),
    (f"{H},", r"entry 2 of .* is empty"),
    (f",{H}", r"entry 1 of .* is empty"),
    ([H, " "], r"entry 2 of \[.*, ' '\] is empty"),
    ([H, ""], r"entry 2 of .* is empty"),
    ([f"{H},{H}"], r"entry .* holds a comma; give each host as its own entry"),
    (f"{H},{H}\x00", r"holds a line break or control character \(U\+0000\)"),
    ([H, f"{H}\x00"], r"holds a line break or control character \(U\+0000\)"),
    (",".join([H] * (MAX_HOSTS + 1)), rf"{MAX_HOSTS + 1} hosts; at most {MAX_HOSTS} are allowed"),
    ([H] * 1000, rf"1000 hosts; at most {MAX_HOSTS}"),
    ([H, 5], r"5 is not a string"),
    (5432, r"5432 is not a host name or a list of them"),
    ({H: 1}, r"is not a host name or a list of them"),
    *((f"{H},{H}{c}", r"holds a line break or control character") for c in LINE_BREAKS),
    *(([f"{H}{c}", H], r"holds a line break or control character") for c in LINE_BREAKS),
]
BAD_PORTS = [
    ("db1,db2,db3", [5432, 5433], r"2 ports \(5432, 5433\) for 3 hosts; give one port, or one port per host"),
    ("db1,db2", "5432,5433,5434", r"3 ports \(5432, 5433, 5434\) for 2 hosts"),
    ("db1", "5432,5433", r"2 ports \(5432, 5433\) for 1 host;"),
    ("db1,db2", "5432,", r"'' is not a whole number from 1 to 65535"),
    ("db1,db2", [5432, 0], r"0 is not a whole number from 1 to 65535"),
    ("db1,db2", [5432, True], r"True is not a whole number"),
    ("db1,db2", "5432,5433\n", r"holds a line break or control character"),
    ("db1,db2", "5432,٥٤٣٣", r"'٥٤٣٣' is not a whole number"),
    ("db1,db2", [], r"\[\] is not one port or one port per host"),
    ("db1,db2", "5432,0x1539", r"'0x1539' is not a whole number from 1 to 65535"),
    ("db1,db2", "5432,65536", r"'65536' is not a whole number from 1 to 65535"),
    ("db1,db2", [5432, 5433.0], r"5433.0 is not a whole number from 1 to 65535"),
    ("db1,db2", ["5432", "9" * 5000], r"is not a whole number from 1 to 65535"),
]


def _params(**options) -> dict:
    params = {k: v.get("default") for k, v in _db_module.database_argument_spec().items()}
    params.update(options)
    return params


@pytest.fixture
def listener():
    """A TCP port that counts the connections it is offered: a refused value must never reach it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock

    sock.close()


def _attempts(sock) -> int:
    count = 0
    while True:
        try:
            conn, _peer_address = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


@pytest.mark.parametrize(("hosts", "message"), BAD_HOSTS)
def test_a_bad_host_list_is_refused_naming_the_option_before_any_connection(listener, hosts, message):
    port = listener.getsockname()[1]
    with pytest.raises(WgValueError, match=r"^login_host: (.*)?" + message) as info:
        _db_module.open_store(_params(login_host=hosts, login_port=port, login_password="pw-hosts"), cipher=None)
    assert _attempts(listener) == 0 and "pw-hosts" not in str(info.value)


@pytest.mark.parametrize(("hosts", "ports", "message"), BAD_PORTS)
def test_ports_that_do_not_match_the_hosts_are_refused_naming_the_option(listener, hosts, ports, message):
    hosts = hosts.replace("db1", H).replace("db2", H).replace("db3", H)
    if isinstance(ports, list) and ports and ports[0] == 5432:
        ports = [listener.getsockname()[1], *ports[1:]]
        message = message.replace("5432", str(ports[0]))
    with pytest.raises(WgValueError, match=r"^login_port: (.*)?" + message):
        _db_module.open_store(_params(login_host=hosts, login_port=ports), cipher=None)
    assert _attempts(listener) == 0


@pytest.mark.parametrize(("hosts", "message"), [(h, m) for h, m in BAD_HOSTS if isinstance(h, str)])
def test_the_services_db_host_is_checked_the_same_way(hosts, message):
    with pytest.raises(ConfigError, match=r"^db_host: (.*)?" + message):
        load_config(environ=dict(SYNC, WGSYNC_DB_HOST=hosts))


@pytest.mark.parametrize(("hosts", "message"), [(h, m) for h, m in BAD_HOSTS if isinstance(h, list)])
def test_the_services_settings_file_list_is_checked_the_same_way(tmp_path, hosts, message):
    import json

    toml = tmp_path / "sync.toml"
    items = ", ".join(json.dumps(h) if isinstance(h, str) else str(h) for h in hosts)
    toml.write_text(f"db_host = [{items}]\n")
    with pytest.raises(ConfigError, match=r"^db_host: (.*)?" + message):
        load_config(str(toml), environ=SYNC)


def test_the_services_settings_file_takes_a_list(tmp_path):
    toml = tmp_path / "sync.toml"
    toml.write_text('db_host = ["db1", "db2"]\ndb_port = [5432, 5433]\n')
    config = load_config(str(toml), environ=SYNC)
    assert config.connect_kwargs()["host"] == "db1,db2" and config.connect_kwargs()["port"] == "5432,5433"
    assert config.connect_kwargs()["target_session_attrs"] == "read-write"
    toml.write_text('db_host = ["db1", ""]\n')
    with pytest.raises(ConfigError, match=r"^db_host: entry 2 of \['db1', ''\] is empty"):
        load_config(str(toml), environ=SYNC)
    toml.write_text('db_host = "db1,db2,db3"\ndb_port = [5432, 5433]\n')
    with pytest.raises(ConfigError, match=r"^db_port: 2 ports \(5432, 5433\) for 3 hosts"):
        load_config(str(toml), environ=SYNC)
    toml.write_text('db_host = []\n')
    with pytest.raises(ConfigError, match=r"^db_host: required"):
        load_config(str(toml), environ=SYNC)


def test_the_services_env_takes_comma_separated_hosts_and_ports():
    config = load_config(environ=dict(SYNC, WGSYNC_DB_HOST="db1, db2", WGSYNC_DB_PORT="5432,5433"))
    assert config.connect_kwargs()["host"] == "db1,db2" and config.connect_kwargs()["port"] == "5432,5433"
    with pytest.raises(ConfigError, match=r"^db_port: 2 ports .* for 3 hosts"):
        load_config(environ=dict(SYNC, WGSYNC_DB_HOST="db1,db2,db3", WGSYNC_DB_PORT="5432,5433"))
