"""playbooks/fleet_report.yml against a real PostgreSQL, read with a monitor login (SELECT on schema_version,
snapshots and sync_status only): one server synced by the real wgrest-sync (real wgrest, real device), another
whose sync status a thread records as a running service would. The report lists both; once the real sync stops,
it fails naming that server within the configured intervals."""
from __future__ import annotations

import re
import time
import uuid

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys
from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import KeyCipher, generate_key
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer
from tests.conftest import needs_lab
from tests.helpers.books import run_book, task_results
from tests.helpers.postgres import needs_postgres
from tests.integration.test_info_modules import Syncing, grant_monitor
from tests.integration.test_wgrest_sync import SERVER_ID, Setup

pytestmark = [needs_lab, needs_postgres, pytest.mark.lab]
INTERVAL, STALE_INTERVALS = 2, 3


@pytest.fixture
def setup(lab, pg_server, pg_db, tmp_path):
    made = Setup(lab, pg_server, pg_db, tmp_path)
    try:
        yield made
    finally:
        made.stop()


def report(setup, login: str, password: str) -> tuple[int, dict, str]:
    extra = {"wgfleet_db_host": "127.0.0.1", "wgfleet_db_port": setup.pg.port, "wgfleet_db_name": setup.db,
             "wgfleet_db_sslmode": "disable", "wgfleet_db_monitor_user": login, "wgfleet_db_monitor_password": password,
             "wgfleet_report_servers": [SERVER_ID, "srv-b"], "wgfleet_report_interval": INTERVAL,
             "wgfleet_report_stale_intervals": STALE_INTERVALS}
    rc, data, out = run_book("fleet_report.yml", extra)
    assert password not in out
    return rc, task_results(data), out


def table(results: dict) -> dict[str, str]:
    """The report's table as printed: server id -> its line."""
    lines = results["Show the fleet"]["msg"]
    return {line.split()[0]: line for line in lines[1:] if line and not line.startswith(" ") and "servers;" not in line}


def test_the_report_lists_the_fleet_and_fails_naming_a_server_whose_sync_stopped(setup):
    pg, db = setup.pg, setup.db
    setup.start()
    setup.wait_status(lambda s: s.get("ok") is True, timeout=20)
    with Store(pg.params(db), KeyCipher.from_base64(generate_key())) as store:
        peer = Peer(public_key=_keys.public_key(_keys.generate_private_key()), allowed_ips=("10.66.0.2/32",))
        store.save_state("srv-b", {"wg0": Interface(private_key=_keys.generate_private_key(), peers=(peer,))})
    login, password = f"wgmon_{uuid.uuid4().hex[:6]}", f"pw-{uuid.uuid4().hex}"
    pg.admin(f"CREATE ROLE {login} LOGIN PASSWORD %s", params=(password,))
    syncing = Syncing(pg.params(db), {"srv-b"})
    try:
        grant_monitor(pg, db, login)
        rc, results, out = report(setup, login, password)
        assert rc == 0, out[-3000:]
        rows = table(results)
        assert set(rows) == {SERVER_ID, "srv-b"}, rows
        stored = pg.admin("SELECT server_id, peer_count FROM snapshots s WHERE id = (SELECT max(id) FROM snapshots"
                          " WHERE server_id = s.server_id)", dbname=db)
        for server, peers in stored:
            assert rows[server].split()[1] == "ok" and rows[server].endswith("healthy"), rows[server]
            assert rows[server].split()[-2] == str(peers)
        assert "every one synced and healthy" in results["Fail naming every stale or failing server"]["msg"]

        # The real sync stops; srv-b's goes on. Within the configured intervals the report fails, naming it.
        setup.stop()
        stopped = time.monotonic()
        time.sleep(INTERVAL * STALE_INTERVALS + 0.5)
        rc, results, out = report(setup, login, password)
        assert rc != 0, out[-3000:]
        message = results["Fail naming every stale or failing server"]["msg"]
        assert re.search(rf"stale \(no successful sync for {INTERVAL * STALE_INTERVALS}(\.0)? s\): {SERVER_ID};", message), \
            message
        assert "srv-b" not in message and "failing: none" in message
        rows = table(results)
        assert "STALE" in rows[SERVER_ID] and rows["srv-b"].endswith("healthy")
        assert time.monotonic() - stopped < INTERVAL * STALE_INTERVALS + 60
    finally:
        syncing.close()
        pg.admin(f"DROP OWNED BY {login}", dbname=db)
        pg.admin(f"DROP ROLE IF EXISTS {login}")


@needs_postgres
def test_the_report_shows_drift_between_a_host_and_its_latest_snapshot(lab, pg_server, pg_db, tmp_path):
    """A server host (a namespace, its wg-quick file) whose file has one peer more than the database holds."""
    ns = lab.host("drift")
    name = lab.wg_name("d")
    key = _keys.generate_private_key()
    peers = [Peer(public_key=_keys.public_key(_keys.generate_private_key()), allowed_ips=(f"10.67.0.{i + 2}/32",))
             for i in range(3)]
    with Store(pg_server.params(pg_db), None, allow_plaintext_keys=True) as store:
        store.migrate()
        store.save_state("srv-drift", {name: Interface(private_key=key, listen_port=51820, peers=tuple(peers[:2]))})
        store.record_sync("srv-drift", True, None, {}, 0.01)
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    login, password = f"wgmon_{uuid.uuid4().hex[:6]}", f"pw-{uuid.uuid4().hex}"
    pg_server.admin(f"CREATE ROLE {login} LOGIN PASSWORD %s", params=(password,))
    grant_monitor(pg_server, pg_db, login)
    inventory = {"all": {"hosts": {"localhost": {}}, "children": {"wireguard_servers": {"hosts": {
        "vpn-drift": {"ansible_connection": "local", "wgfleet_server_id": "srv-drift"}}}}}}
    extra = {"wgfleet_db_host": pg_server.socket_dir, "wgfleet_db_port": pg_server.port, "wgfleet_db_name": pg_db,
             "wgfleet_db_sslmode": "disable", "wgfleet_db_monitor_user": login, "wgfleet_db_monitor_password": password,
             "wgfleet_report_drift": True, "wgfleet_report_config_dir": str(conf_dir)}
    try:
        for count, drift in ((2, False), (3, True)):
            lines = [f"[Interface]\nPrivateKey = {key}\nListenPort = 51820\n"]
            lines += [f"[Peer]\nPublicKey = {p.public_key}\nAllowedIPs = {p.allowed_ips[0]}\n" for p in peers[:count]]
            (conf_dir / f"{name}.conf").write_text("\n".join(lines))
            (conf_dir / f"{name}.conf").chmod(0o600)
            rc, data, out = run_book("fleet_report.yml", extra, inventory=inventory, netns=ns)
            assert key not in out
            result = task_results(data, "vpn-drift")["Fail on a server whose live state differs from its latest snapshot"]
            assert rc == (2 if drift else 0), out[-3000:]
            if drift:
                assert result.get("failed") and "drift on srv-drift: live 1 interfaces and 3 peers" in result["msg"]
                assert "1 interfaces and 2 peers" in result["msg"]
            else:
                assert not result.get("failed") and "matches snapshot" in result["msg"], result
    finally:
        pg_server.admin(f"DROP OWNED BY {login}", dbname=pg_db)
        pg_server.admin(f"DROP ROLE IF EXISTS {login}")
