"""wgrest-sync against a real PostgreSQL, the wgrest double and real devices.

The service runs as its own process (``python -m ..._sync``, as in its
container); the tests read the database and the status file independently.
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

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _files, _keys, _secrets, _wgconf, _wgrest
from ansible_collections.wgfleet.wireguard.plugins.module_utils._peers import PeerSpec
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store
from tests.conftest import needs_lab
from tests.helpers.keys import new_key
from tests.helpers.playbook import COLLECTIONS, REPO
from tests.helpers.postgres import needs_postgres
from tests.wgrest_server.harness import ServerHost

pytestmark = [needs_lab, needs_postgres, pytest.mark.lab]
TOKEN = "sync-token-a41e"
SERVER_ID = "srv-sync-test"
INTERVAL = 1.0
MODULE = "ansible_collections.wgfleet.wireguard.plugins.module_utils._sync"


class Setup:
    """One server host (interface + wgrest double), the sync's settings, and readers of what it stored."""

    def __init__(self, lab, pg, db, base: Path):
        self.pg, self.db, self.base = pg, db, base
        self.host = ServerHost(lab)
        self.name = lab.wg_name("y")
        self.etc, self.dump = base / "etc-wireguard", base / "wgrest"
        self.file_peer = _wgconf.Peer(public_key=new_key(), allowed_ips=["10.231.10.2/32"], name="from-file")
        self.iface = _wgconf.Interface(private_key=_keys.generate_private_key(), listen_port=51820,
                                       address=["10.231.10.1/24"], post_up=[_wgrest.restore_hook(str(self.dump))],
                                       peers=[self.file_peer])
        _files.write_config(_files.config_path(str(self.etc), self.name), self.iface)
        self.host.quick("up", _files.config_path(str(self.etc), self.name))
        self.host.start_wgrest(self.dump, token=TOKEN)
        self.key_file = base / "key"
        self.key_file.write_text(_secrets.generate_key() + "\n")
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
        self.backend = _wgrest.WgrestBackend(self.name, self.host.api_url, TOKEN)

    # -- the service
    def run(self, *args, env=None, timeout=30) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", MODULE, *args]
        full = {"PATH": os.environ["PATH"], "PYTHONPATH": str(COLLECTIONS), **self.env, **(env or {})}
        return subprocess.run(argv, capture_output=True, text=True, env=full, timeout=timeout, cwd="/", check=False)

    def start(self) -> None:
        full = {"PATH": os.environ["PATH"], "PYTHONPATH": str(COLLECTIONS), **self.env}
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

    # -- independent readers
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


def test_repository_root_is_not_needed_on_the_path():
    """The service imports only its own package (as in the container): nothing from tests/."""
    source = (REPO / "plugins" / "module_utils" / "_sync.py").read_text()
    assert "tests" not in {line.split()[1].split(".")[0] for line in source.splitlines()
                           if line.startswith(("import ", "from "))}
