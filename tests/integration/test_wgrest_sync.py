"""wgrest-sync against a real PostgreSQL, the real wgrest and real devices.

The service runs as its own process (``python -m ..._sync``, as in its
container); the tests read the database (with plain SQL), the status file and
the log independently. A scripted HTTP server stands in for wgrest only where
the real one cannot be made to misbehave (garbage answers).
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import (
    _files,
    _keys,
    _secrets,
    _wgconf,
    _wgrest,
    _wgrest_backend,
    _wgrest_dump,
)
from ansible_collections.wgfleet.wireguard.plugins.module_utils._peers import PeerSpec
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store
from tests.conftest import needs_lab
from tests.helpers.keys import new_key
from tests.helpers.netns import sh
from tests.helpers.playbook import COLLECTIONS, run_playbook
from tests.helpers.postgres import grant, needs_postgres
from tests.helpers.scripted_http import ScriptedHTTP
from tests.helpers.wgrest_real import Client, WgrestHost

pytestmark = [needs_lab, needs_postgres, pytest.mark.lab]
TOKEN = "sync-token-a41e"
SERVER_ID = "srv-sync-test"
INTERVAL = 1.0
MODULE = "ansible_collections.wgfleet.wireguard.plugins.module_utils._sync"


class Setup:
    """One server host (interface + the real wgrest), the sync's settings, and readers of what it stored."""

    def __init__(self, lab, pg, db, base: Path):
        self.pg, self.db, self.base = pg, db, base
        self.host = WgrestHost(lab)
        self.name = lab.wg_name("y")
        self.etc, self.dump = base / "etc-wireguard", base / "wgrest"
        self.file_peer = _wgconf.Peer(public_key=new_key(), allowed_ips=["10.231.10.2/32"], name="from-file")
        self.iface = _wgconf.Interface(private_key=_keys.generate_private_key(), listen_port=51820,
                                       address=["10.231.10.1/24"], post_up=[_wgrest_dump.restore_hook(str(self.dump))],
                                       peers=[self.file_peer])
        _files.write_config(_files.config_path(str(self.etc), self.name), self.iface)
        self.host.quick("up", _files.config_path(str(self.etc), self.name))
        self.host.start_wgrest(self.dump, token=TOKEN)
        self.key = _secrets.generate_key()
        self.key_file = base / "key"
        self.key_file.write_text(self.key + "\n")
        self.key_file.chmod(0o600)
        (base / "token").write_text(TOKEN + "\n")
        (base / "dbpw").write_text(pg.params()["password"] + "\n")
        self.status_file = base / "run" / "status.json"
        self.env = {
            "WGSYNC_SERVER_ID": SERVER_ID, "WGSYNC_DB_HOST": "127.0.0.1", "WGSYNC_DB_PORT": str(pg.port),
            "WGSYNC_DB_NAME": db, "WGSYNC_DB_USER": "postgres", "WGSYNC_DB_PASSWORD_FILE": str(base / "dbpw"),
            "WGSYNC_DB_SSLMODE": "disable", "WGSYNC_DB_CONNECT_TIMEOUT": "2",
            "WGSYNC_WGREST_URL": self.host.api_url, "WGSYNC_WGREST_TOKEN_FILE": str(base / "token"),
            "WGSYNC_WGREST_TIMEOUT": "2", "WGSYNC_CONFIG_DIR": str(self.etc),
            "WGSYNC_ENCRYPTION_KEY_FILE": str(self.key_file), "WGSYNC_STATUS_FILE": str(self.status_file),
            "WGSYNC_INTERVAL": str(INTERVAL), "WGSYNC_BACKOFF_BASE": "0.3",
        }
        self.daemon: subprocess.Popen | None = None
        self.client = _wgrest.WgrestClient(self.host.api_url, TOKEN)
        self.backend = _wgrest_backend.WgrestBackend(self.name, self.host.api_url, TOKEN)

    # -- the service
    def run(self, *args, env=None, timeout=30) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", MODULE, *args]
        full = {"PATH": os.environ["PATH"], "PYTHONPATH": str(COLLECTIONS), **self.env, **(env or {})}
        return subprocess.run(argv, capture_output=True, text=True, env=full, timeout=timeout, cwd="/", check=False)

    def start(self, env: dict | None = None) -> None:
        full = {"PATH": os.environ["PATH"], "PYTHONPATH": str(COLLECTIONS), **self.env, **(env or {})}
        self.daemon = subprocess.Popen([sys.executable, "-m", MODULE], env=full, cwd="/", stdout=subprocess.DEVNULL,
                                       stderr=open(self.base / "sync.log", "w"))  # noqa: SIM115 - closed with the process

    def stop(self) -> None:
        if self.daemon and self.daemon.poll() is None:
            self.daemon.terminate()
            self.daemon.wait(timeout=10)
        self.daemon = None

    def log(self) -> str:
        return (self.base / "sync.log").read_text() if (self.base / "sync.log").exists() else ""

    def status(self) -> dict:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def wait_status(self, predicate, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status and predicate(status):
                return status
            time.sleep(0.1)
        raise AssertionError(f"status never matched; last: {self.status()}; log tail: {self.log()[-1500:]}")

    def backup(self, **options) -> dict:
        """wg_backup on the server host (through ansible-playbook, as an operator runs it)."""
        args = {"server_id": SERVER_ID, "config_dir": str(self.etc), "encryption_key": self.key,
                **self.pg.module_params(self.db, unix_socket=True), **options}
        res = run_playbook([{"name": "backup", "wgfleet.wireguard.wg_backup": args, "ignore_errors": True}],
                           prefix=self.host.prefix)
        assert "Traceback" not in res.output and self.key not in res.output
        return res["backup"]

    # -- independent readers
    def current_peers(self) -> dict[str, tuple]:
        """Current peer rows, straight from the table: public key -> (endpoint, name)."""
        rows = self.pg.admin("SELECT public_key, endpoint, name FROM peers WHERE server_id = %s AND valid_to IS NULL",
                             dbname=self.db, params=(SERVER_ID,))
        return {key: (endpoint, name) for key, endpoint, name in rows}

    def stored(self) -> dict:
        with Store(self.pg.params(self.db), _secrets.KeyCipher.from_file(str(self.key_file))) as store:
            return store.load_state(SERVER_ID)[1]

    def count(self, table: str) -> int:
        return self.pg.admin(f"SELECT count(*) FROM {table}", dbname=self.db)[0][0]

    def sync_row(self) -> dict:
        keys = ("ok", "error", "last_attempt_at", "last_success_at", "consecutive_failures", "counts")
        row = self.pg.admin(f"SELECT {', '.join(keys)} FROM sync_status WHERE server_id = %s", dbname=self.db,
                            params=(SERVER_ID,))
        return dict(zip(keys, row[0], strict=True)) if row else {}


@pytest.fixture
def setup(lab, pg_server, pg_db, tmp_path):
    made = Setup(lab, pg_server, pg_db, tmp_path)
    try:
        yield made
    finally:
        made.stop()
        if not pg_server.running:
            pg_server.start()


def api_peer(n: int) -> PeerSpec:
    return PeerSpec(public_key=new_key(), allowed_ips=[f"10.231.10.{n}/32"], preshared_key=_keys.generate_private_key(),
                    persistent_keepalive=25)


@pytest.mark.parametrize(("env", "message"), [
    ({"WGSYNC_SERVER_ID": ""}, "server_id: required"),
    ({"WGSYNC_INTERVAL": "soon"}, "interval: 'soon' is not a positive number of seconds"),
    ({"WGSYNC_ENCRYPTION_KEY_FILE": "/nonexistent/key"}, "encryption_key_file: cannot read /nonexistent/key"),
    ({"WGSYNC_ENCRYPTION_KEY": _secrets.generate_key()}, "keys are read from a file by default"),
    ({"WGSYNC_DB_SSLMODE": "sometimes"}, "db_sslmode: 'sometimes' is not one of"),
    ({"WGSYNC_WGREST_TOKEN_FILE": "", "WGSYNC_WGREST_TOKEN": ""}, "wgrest_token: required"),
    ({"WGSYNC_WGREST_URL": "ftp://x"}, "wgrest_url: 'ftp://x' is not an http"),
    ({"WGSYNC_SERVER_ID": "srv\x1e1"}, "server_id: 'srv\\x1e1' holds a line break or control character (U+001E"),
    ({"WGSYNC_INTERVAL": "nan"}, "interval: 'nan' is not a positive number of seconds"),
    ({"WGSYNC_INTERVAL": "1e400"}, "interval: '1e400' is not a positive number of seconds"),
    ({"WGSYNC_DB_PORT": "99999"}, "db_port: '99999' is not a whole number from 1 to 65535"),
    ({"WGSYNC_DB_PORT": "²"}, "db_port: '²' is not a whole number"),
    ({"WGSYNC_CONFIG_DIR": "/etc/wire\nguard"}, "config_dir: '/etc/wire\\nguard' holds a line break or control character"),
    ({"WGSYNC_DB_PASSWORD_FILE": "", "WGSYNC_DB_PASSWORD": "pw\x01x"}, "db_password: (hidden) holds"),
])
def test_bad_configuration_exits_at_start_with_a_clear_message(setup, env, message):
    proc = setup.run(env=env, timeout=20)  # the daemon mode: it must not start at all
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_setting_in_the_config_file_is_refused(setup):
    conf = setup.base / "sync.toml"
    conf.write_text('interval = 5\nintervall = 6\n')
    proc = setup.run("--config", str(conf), "--check-config")
    assert proc.returncode == 2 and "unknown setting 'intervall'" in proc.stderr


def test_once_stores_file_settings_and_api_peers_then_writes_nothing(setup):
    specs = [api_peer(20), api_peer(21)]
    setup.backend.apply(specs, False, False)
    proc = setup.run("--once")
    assert proc.returncode == 0, proc.stderr

    stored = setup.stored()[setup.name]
    assert stored.address == ("10.231.10.1/24",) and stored.post_up == setup.iface.post_up
    assert stored.private_key == setup.iface.private_key
    assert stored.peer_map()[setup.file_peer.public_key].name == "from-file"
    for spec in specs:
        peer = stored.peer_map()[spec.public_key]
        assert (peer.preshared_key, peer.persistent_keepalive) == (spec.preshared_key, 25)
    assert setup.count("snapshots") == 1 and setup.count("peers") == 3
    for spec in specs:
        assert spec.preshared_key not in proc.stderr, "preshared key leaked into the log"

    first = setup.sync_row()
    proc = setup.run("--once")
    assert proc.returncode == 0 and "no change" in proc.stderr
    assert setup.count("snapshots") == 1 and setup.count("peers") == 3
    row = setup.sync_row()
    assert row["ok"] and row["last_attempt_at"] > first["last_attempt_at"] and row["counts"]["peer_rows_written"] == 0


def test_a_peer_added_through_the_api_is_stored_within_one_interval(setup):
    setup.start()
    setup.wait_status(lambda s: s["ok"])
    snapshots = setup.count("snapshots")
    spec = api_peer(30)
    setup.backend.apply([spec], False, False)
    added = time.monotonic()
    while spec.public_key not in setup.stored()[setup.name].peer_map():
        assert time.monotonic() - added < INTERVAL + 1.5, "the peer was not stored within one interval"
        time.sleep(0.05)
    assert setup.count("snapshots") == snapshots + 1

    # Nothing changes for a few cycles: no snapshot, no peer row, but every attempt recorded.
    rows, before = setup.count("peers"), setup.sync_row()["last_attempt_at"]
    time.sleep(3 * INTERVAL)
    assert (setup.count("snapshots"), setup.count("peers")) == (snapshots + 1, rows)
    assert setup.sync_row()["last_attempt_at"] > before


def test_a_database_outage_mid_run_loses_nothing(setup):
    first = api_peer(40)
    setup.backend.apply([first], False, False)
    setup.start()
    setup.wait_status(lambda s: s["ok"])
    setup.pg.stop()
    second = api_peer(41)
    setup.backend.apply([second], False, False)
    status = setup.wait_status(lambda s: not s["ok"] and s["consecutive_failures"] >= 2)
    assert "save failed" in status["error"] and "PostgreSQL" in status["error"]
    assert setup.daemon.poll() is None, "the service died during the outage"

    setup.pg.start()
    setup.wait_status(lambda s: s["ok"], timeout=INTERVAL + 10)
    stored = setup.stored()[setup.name].peer_map()
    assert {first.public_key, second.public_key, setup.file_peer.public_key} <= set(stored)
    row = setup.sync_row()
    assert row["ok"] and row["consecutive_failures"] == 0
    assert second.preshared_key not in setup.log(), "preshared key leaked into the log"


def test_wgrest_down_keeps_the_last_good_state_and_records_the_error(setup):
    specs = [api_peer(50), api_peer(51)]
    setup.backend.apply(specs, False, False)
    setup.start()
    setup.wait_status(lambda s: s["ok"])
    good = setup.stored()
    snapshots = setup.count("snapshots")

    setup.host.stop_wgrest()
    setup.wait_status(lambda s: not s["ok"] and s["consecutive_failures"] >= 2)
    assert setup.stored() == good and setup.count("snapshots") == snapshots
    row = setup.sync_row()
    assert not row["ok"] and "read failed (wgrest), nothing saved" in row["error"] and row["last_success_at"]

    health = setup.run("--health", env={"WGSYNC_HEALTH_MAX_AGE": "1"})
    assert health.returncode == 1 and health.stdout.startswith("unhealthy")
    setup.host.start_wgrest(setup.dump, token=TOKEN)
    setup.wait_status(lambda s: s["ok"], timeout=INTERVAL + 10)
    assert setup.run("--health").returncode == 0
    assert setup.stored() == good


def test_runs_without_capabilities_on_a_read_only_mount(setup):
    """No capability at all (as in its container: cap_drop ALL, no-new-privileges) and the config dir
    bind-mounted read-only: it reads the files and writes nothing but its status file."""
    if not shutil.which("setpriv") or not shutil.which("unshare"):
        pytest.skip("needs setpriv and unshare (util-linux)")
    etc = shlex.quote(str(setup.etc))
    inner = (f"mount --bind {etc} {etc} && mount -o remount,bind,ro {etc} && exec setpriv --bounding-set=-all "
             f"--inh-caps=-all --no-new-privs {shlex.quote(sys.executable)} -m {MODULE} --once")
    before = sorted(p.name for p in setup.etc.iterdir())
    full = {"PATH": os.environ["PATH"], "PYTHONPATH": str(COLLECTIONS), **setup.env}
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", inner], capture_output=True,
                          text=True, env=full, timeout=30, cwd="/", check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in setup.etc.iterdir()) == before, "the service wrote into the config dir"
    assert setup.name in setup.stored() and setup.status()["ok"]


def test_no_message_carries_a_key_and_the_status_file_is_0600(setup):
    """A config file with a typo on its key line: the error goes to the log, the status file and the database,
    and none of them quotes the key."""
    private = _keys.generate_private_key()
    typo = setup.etc / "wgtypo0.conf"
    typo.write_text(f"[Interface]\nPrivateKey: {private}\nListenPort = 51830\n")
    typo.chmod(0o600)
    proc = setup.run("--once")
    assert proc.returncode == 1
    status_text = setup.status_file.read_text()
    row = setup.sync_row()
    for where, text in (("log", proc.stderr), ("status file", status_text), ("sync_status.error", row["error"])):
        assert "read failed (files), nothing saved" in text, (where, text)
        assert private not in text and private[:20] not in text, f"the key leaked into the {where}"
        assert TOKEN not in text and setup.key not in text
    assert os.stat(setup.status_file).st_mode & 0o777 == 0o600
    assert "Traceback" not in proc.stderr


def test_a_token_with_a_line_break(setup):
    """A trailing newline (an env file, echo) is stripped; one inside is refused at start, naming the setting."""
    ok = setup.run("--once", env={"WGSYNC_WGREST_TOKEN_FILE": "", "WGSYNC_WGREST_TOKEN": TOKEN + "\n"})
    assert ok.returncode == 0, ok.stderr[-1500:]
    for bad in (f"{TOKEN}\nX-Other: 1", f"{TOKEN} x", f"{TOKEN}\x7f"):
        proc = setup.run("--once", env={"WGSYNC_WGREST_TOKEN_FILE": "", "WGSYNC_WGREST_TOKEN": bad})
        assert proc.returncode == 2 and "configuration error: wgrest_token:" in proc.stderr, proc.stderr
        assert TOKEN not in proc.stderr and "Traceback" not in proc.stderr
    (setup.base / "token2").write_text(f"{TOKEN}\nsecond line\n")
    proc = setup.run("--once", env={"WGSYNC_WGREST_TOKEN_FILE": str(setup.base / "token2")})
    assert proc.returncode == 2 and "wgrest_token_file:" in proc.stderr and TOKEN not in proc.stderr


def Hostile():
    """A server in place of wgrest, answering from scenarios: each maps "devices" (the device list) and "peers"
    (everything else) to (status, headers, body); each new cycle (a request of the device list's first page)
    takes the next one, the last repeats. In a Link header, NEXT stands for the next page of the same route."""
    state = {"current": -1}

    def answer(request):
        route = "devices" if request.path.rstrip("/") == "/v1/devices" else "peers"
        if route == "devices" and request.page == 0:
            state["current"] = min(state["current"] + 1, len(server.scenarios) - 1)
        status, headers, body = server.scenarios[state["current"]][route]
        nxt = f"{server.url}{request.path}?page={request.page + 1}&per_page=100"
        return status, {k: v.replace("NEXT", nxt) for k, v in headers.items()}, body

    server = ScriptedHTTP(answer)
    server.scenarios = []
    return server


def test_hostile_api_answers_are_recorded_and_the_service_keeps_running(setup):
    """Garbage, wrong types, endless or foreign "next" links: each cycle fails with a message naming wgrest,
    nothing is saved, the token goes nowhere else, and the service goes on."""
    setup.run("--once")
    good = setup.stored()
    snapshots = setup.count("snapshots")
    api, elsewhere = Hostile(), Hostile()
    as_json = {"Content-Type": "application/json"}
    no_peers = (200, as_json, b"[]")
    elsewhere.scenarios = [{"devices": no_peers, "peers": no_peers}]
    device = json.dumps([{"name": setup.name, "private_key": None}]).encode()

    def devices(body, headers=None, status=200):
        return {"devices": (status, headers or as_json, body), "peers": no_peers}

    def peers(body, headers=None, status=200):
        return {"devices": (200, as_json, device), "peers": (status, headers or as_json, body)}

    api.scenarios = [
        devices(b'[{"foo": 1}]'),
        devices(b'["x", 1]'),
        devices(b'{"name": "wg0"}'),
        devices(b"<html>not json</html>", {"Content-Type": "text/html"}),
        devices(b"[" * 100_000),
        devices(json.dumps([{"name": setup.name, "listen_port": "x"}]).encode()),
        devices(json.dumps([{"name": setup.name, "private_key": "A" * 43 + "x"}]).encode()),
        devices(device, {**as_json, "Link": f'<{elsewhere.url}/v1/devices/?page=1&per_page=100>; rel="next"'}),
        devices(device, {**as_json, "Link": '<NEXT>; rel="next"'}),
        peers(b'[{"foo": 1}]'),
        peers(json.dumps([{"public_key": new_key(), "allowed_ips": "10.0.0.1/32"}]).encode()),
        peers(json.dumps([{"public_key": new_key(), "allowed_ips": ["10.0.0.1/32\nAllowedIPs = 0.0.0.0/0"]}]).encode()),
        peers(json.dumps({"code": "internal_error", "message": f"echo Bearer {TOKEN}"}).encode(), status=500),
    ]
    try:
        setup.start(env={"WGSYNC_WGREST_URL": api.url, "WGSYNC_INTERVAL": "0.2", "WGSYNC_BACKOFF_BASE": "0.05"})
        status = setup.wait_status(lambda s: s.get("consecutive_failures", 0) >= len(api.scenarios) + 2, timeout=90)
        assert setup.daemon.poll() is None, "the service died"
        assert "read failed (wgrest), nothing saved" in status["error"]
        log = setup.log()
        assert "Traceback" not in log and TOKEN not in log and TOKEN not in setup.status_file.read_text()
        for needle in ("not a device with a name", "not a JSON list", f"another server ({elsewhere.url[7:]})",
                       "same page twice", "listen_port is a JSON str", "private_key: **redacted**",
                       "not a peer with a public key", "allowed_ips is a JSON str", "holds a line break",
                       "HTTP 500 internal_error (echo Bearer (api_token))"):
            assert needle in log, f"no failure mentions {needle!r}: {log[-3000:]}"
        assert elsewhere.tokens == [], "the token was sent to another server"
        assert setup.stored() == good and setup.count("snapshots") == snapshots
        row = setup.sync_row()
        assert not row["ok"] and row["consecutive_failures"] >= len(api.scenarios) and TOKEN not in row["error"]
    finally:
        setup.stop()
        api.close()
        elsewhere.close()


def test_a_half_built_host_never_overwrites_the_stored_state(setup):
    """wg1 not there yet, or wg0 up with a fresh key: the sync refuses and says why; wg_backup may still store it."""
    idle_name = setup.name[:-1] + "z"
    idle = _wgconf.Interface(private_key=_keys.generate_private_key(), listen_port=51831, address=["10.231.11.1/24"])
    idle_path = _files.config_path(str(setup.etc), idle_name)
    _files.write_config(idle_path, idle)
    assert setup.run("--once").returncode == 0
    stored_rows = {t: setup.count(t) for t in ("snapshots", "interfaces", "server_keys", "peers")}

    os.unlink(idle_path)  # the second interface is not restored yet
    proc = setup.run("--once")
    assert proc.returncode == 1
    row = setup.sync_row()
    assert f"has no interface {idle_name}" in row["error"] and "the stored state is kept" in row["error"]
    assert {t: setup.count(t) for t in stored_rows} == stored_rows

    _files.write_config(idle_path, idle)
    fresh = setup.iface.replace(private_key=_keys.generate_private_key())  # a base role's new key
    path = _files.config_path(str(setup.etc), setup.name)
    setup.host.quick("down", path)
    _files.write_config(path, fresh)
    setup.host.quick("up", path)
    proc = setup.run("--once")
    assert proc.returncode == 1
    row = setup.sync_row()
    assert f"interface {setup.name} has public key {_keys.public_key(fresh.private_key)[:12]}..." in row["error"]
    assert f"stored state has public key {_keys.public_key(setup.iface.private_key)[:12]}..." in row["error"]
    assert fresh.private_key not in row["error"]
    assert {t: setup.count(t) for t in stored_rows} == stored_rows
    assert setup.stored()[setup.name].private_key == setup.iface.private_key

    # The operator decides: wg_backup stores the new key, and the sync goes on from there.
    result = setup.backup()
    assert result.get("changed") and not result.get("failed"), result
    assert setup.run("--once").returncode == 0 and setup.sync_row()["ok"]
    assert setup.stored()[setup.name].private_key == fresh.private_key


def test_wg_backup_and_the_sync_capture_alike_and_a_revoked_peer_is_not_stored(setup):
    """One capture rule: saves by wg_backup and by the sync never alternate; learned endpoints are not stored;
    a peer revoked live is stored by neither, though the wg-quick file still lists it."""
    api = api_peer(60)
    setup.backend.apply([api], False, False)
    # What the device learns from traffic (a roaming client), for a file peer and for an API peer.
    setup.host.run("wg", "set", setup.name, "peer", setup.file_peer.public_key, "endpoint", "172.30.254.9:40001")
    setup.host.run("wg", "set", setup.name, "peer", api.public_key, "endpoint", "172.30.254.10:40002")
    assert setup.run("--once").returncode == 0
    snapshots, rows = setup.count("snapshots"), setup.count("peers")
    assert setup.current_peers()[api.public_key] == (None, None)
    assert setup.current_peers()[setup.file_peer.public_key] == (None, "from-file")
    for _round in range(2):
        assert not setup.backup()["changed"]
        proc = setup.run("--once")
        assert proc.returncode == 0 and "no change" in proc.stderr
    assert (setup.count("snapshots"), setup.count("peers")) == (snapshots, rows)

    # Revoked through wgrest: off the device, still in the wg-quick file (wgrest never edits it).
    setup.client.delete_peer(setup.name, setup.file_peer.public_key)
    assert setup.file_peer.public_key in _files.read_config(_files.config_path(str(setup.etc), setup.name)).peer_map()
    result = setup.backup()
    assert result["changed"], result
    assert setup.file_peer.public_key not in setup.current_peers()
    assert setup.run("--once").returncode == 0
    assert setup.file_peer.public_key not in setup.current_peers()


def test_a_roaming_client_is_no_change(setup, lab, tmp_path):
    """A client whose address moves (a NAT port change): the device follows it, the store writes nothing."""
    setup.host.private_key = setup.iface.private_key
    client = Client(lab, setup.host, tmp_path, "10.231.10.40", server_address="10.231.10.1")
    setup.backend.apply([PeerSpec(public_key=client.public_key, allowed_ips=["10.231.10.40/32"])], False, False)
    assert client.can_reach_server()
    assert setup.run("--once").returncode == 0
    snapshots, rows = setup.count("snapshots"), setup.count("peers")
    endpoints = set()
    for port in (40101, 40102, 40103):
        sh("wg", "set", client.name, "listen-port", str(port), netns=client.ns)
        assert client.can_reach_server()
        endpoints.add(setup.host.peers(setup.name)[client.public_key][2])
        assert setup.run("--once").returncode == 0
    assert len(endpoints) == 3, "the client did not move"
    assert (setup.count("snapshots"), setup.count("peers")) == (snapshots, rows)
    assert setup.current_peers()[client.public_key][0] is None


def test_the_sync_and_a_restore_with_only_the_roles_grants(setup, logins, tmp_path):
    """The schema made by its owner (wg_backup schema_only), then the service and wg_restore with the server's
    own login: each works with exactly the database role's GRANTs."""
    owner = logins["owner"]
    db_options = {"login_host": owner["host"], "login_port": owner["port"], "db": setup.db}
    res = run_playbook([{"name": "schema", "wgfleet.wireguard.wg_backup": {
        **db_options, "login_user": owner["user"], "login_password": owner["password"], "schema_only": True}}])
    assert res.rc == 0 and res["schema"]["changed"], res.output[-2000:]
    grant(setup.pg, logins, setup.db, SERVER_ID)
    sync = logins["server"]
    (setup.base / "syncpw").write_text(sync["password"] + "\n")
    as_sync = {"WGSYNC_DB_USER": sync["user"], "WGSYNC_DB_PASSWORD_FILE": str(setup.base / "syncpw")}
    setup.backend.apply([api_peer(70)], False, False)
    for _round in range(2):
        proc = setup.run("--once", env=as_sync)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert setup.count("snapshots") == 1 and setup.sync_row()["ok"]

    restore = logins["server"]
    target = tmp_path / "restored"
    res = run_playbook([{"name": "restore", "wgfleet.wireguard.wg_restore": {
        **db_options, "login_user": restore["user"], "login_password": restore["password"], "server_id": SERVER_ID,
        "config_dir": str(target), "encryption_key": setup.key}}])
    assert res.rc == 0, res.output[-2000:]
    assert res["restore"]["changed"] and (target / f"{setup.name}.conf").exists()
    assert restore["password"] not in res.output and setup.key not in res.output
