"""wg_retention against a real PostgreSQL: what it keeps restores exactly, the latest is never pruned, check mode
deletes nothing, bad options delete nothing, and saves go on while it prunes. Checked with plain SQL and by
loading every kept snapshot against the state that was saved as it."""
from __future__ import annotations

import threading
import uuid

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys
from ansible_collections.wgfleet.wireguard.plugins.module_utils._retention import Policy, prune
from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import KeyCipher, generate_key
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store_types import StoreError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer
from tests.helpers.books import run_book, task_results
from tests.helpers.playbook import run_playbook
from tests.helpers.postgres import needs_postgres

pytestmark = needs_postgres
TABLES = ("snapshots", "interfaces", "server_keys", "peers")


def new_peer(i: int) -> Peer:
    return Peer(public_key=_keys.public_key(_keys.generate_private_key()), allowed_ips=(f"10.88.0.{i + 2}/32",),
                preshared_key=_keys.generate_private_key(), name=f"client {i}")


class History:
    """Server srv-a with ten snapshots a day apart (each a change: peers revoked, added, edited), srv-b with three
    recent ones; every saved state kept, by snapshot id, to compare loads with."""

    def __init__(self, pg, db):
        self.pg, self.db = pg, db
        self.key = generate_key()
        self.saved: dict[str, dict[int, dict]] = {"srv-a": {}, "srv-b": {}}
        peers = [new_peer(i) for i in range(5)]
        self.revoked = [peers[0].public_key, peers[2].public_key]
        self.revoked_psks = [peers[0].preshared_key, peers[2].preshared_key]
        iface = Interface(private_key=_keys.generate_private_key(), listen_port=51820, address=("10.88.0.1/24",))
        p5, p6, p7, p8 = (new_peer(i) for i in range(5, 9))
        steps = [
            peers,
            peers[1:],                                                     # p0 revoked
            [*peers[1:], p5],
            [peers[1].replace(allowed_ips=("10.88.1.0/24",)), *peers[2:], p5],
            [peers[1].replace(allowed_ips=("10.88.1.0/24",)), peers[3], peers[4], p5],   # p2 revoked
            [peers[1].replace(allowed_ips=("10.88.1.0/24",)), peers[3], peers[4], p5, p6],
            [peers[1].replace(allowed_ips=("10.88.1.0/24",)), peers[3].replace(name="renamed"), peers[4], p5, p6],
            [peers[1].replace(allowed_ips=("10.88.1.0/24",)), peers[3].replace(name="renamed"), peers[4], p5, p6, p7],
            [peers[1].replace(allowed_ips=("10.88.1.0/24",)), peers[3].replace(name="renamed"), peers[4], p6, p7],
            [peers[1].replace(allowed_ips=("10.88.1.0/24",)), peers[3].replace(name="renamed"), peers[4], p6, p7, p8],
        ]
        with self.store() as store:
            store.migrate()
            for step in steps:
                state = {"wg0": iface.replace(peers=tuple(step))}
                self.saved["srv-a"][store.save_state("srv-a", state).snapshot_id] = state
            other = Interface(private_key=_keys.generate_private_key(), listen_port=51821)
            for n in range(3):
                state = {"wg1": other.replace(peers=tuple(new_peer(i) for i in range(n + 1)))}
                self.saved["srv-b"][store.save_state("srv-b", state).snapshot_id] = state
        self.ids = sorted(self.saved["srv-a"])
        # Snapshot i of srv-a taken 10 - i days (and an hour) ago; srv-b's are fresh.
        for index, snap_id in enumerate(self.ids):
            self.sql("UPDATE snapshots SET created_at = now() - make_interval(days => %s, hours => 1) WHERE id = %s",
                     (10 - index, snap_id))

    def store(self) -> Store:
        return Store(self.pg.params(self.db), KeyCipher.from_base64(self.key))

    def sql(self, query: str, params=None):
        return self.pg.admin(query, dbname=self.db, params=params)

    def counts(self) -> dict[str, int]:
        return {t: self.sql(f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}

    def snapshot_ids(self, server: str) -> list[int]:
        return [r[0] for r in self.sql("SELECT id FROM snapshots WHERE server_id = %s ORDER BY id", (server,))]

    def options(self, **extra) -> dict:
        p = self.pg.params(self.db)
        return {"login_host": p["host"], "login_port": p["port"], "login_user": p["user"],
                "login_password": p["password"], "db": self.db, "ssl_mode": "disable", **extra}


@pytest.fixture
def history(pg_server, pg_db):
    return History(pg_server, pg_db)


def retention_task(history, register="r", **args):
    return {"name": register, "wgfleet.wireguard.wg_retention": history.options(**args), "register": register,
            "ignore_errors": True}


def test_check_mode_counts_what_a_run_then_deletes_and_kept_snapshots_restore(history):
    before = history.counts()
    policy = {"keep_days": 3, "keep_latest": 3}
    res = run_playbook([retention_task(history, **policy)], check=True)
    assert res.rc == 0, res.output
    predicted = res["r"]
    assert predicted["changed"] is True
    assert history.counts() == before, "check mode deleted something"
    expected_kept = history.ids[-3:]  # two within 3 days, and the latest three
    assert predicted["servers"]["srv-a"]["deleted_snapshot_ids"] == history.ids[:-3]
    assert predicted["servers"]["srv-b"]["deleted_snapshots"] == 0

    res = run_playbook([retention_task(history, **policy), retention_task(history, "again", **policy)])
    assert res.rc == 0, res.output
    done, again = res["r"], res["again"]
    after = history.counts()
    assert history.snapshot_ids("srv-a") == expected_kept
    assert history.snapshot_ids("srv-b") == sorted(history.saved["srv-b"])
    assert before["snapshots"] - after["snapshots"] == done["totals"]["deleted_snapshots"] == 7
    for table in ("interfaces", "server_keys", "peers"):
        assert before[table] - after[table] == done["totals"][table] == predicted["totals"][table]
    assert done["totals"]["peers"] > 0
    assert again["changed"] is False and again["totals"]["deleted_snapshots"] == 0

    # The revoked peers' rows (with their sealed preshared keys) are gone; every kept snapshot loads as saved.
    assert history.sql("SELECT count(*) FROM peers WHERE public_key = ANY(%s)", (history.revoked,))[0][0] == 0
    with history.store() as store:
        for server, saved in history.saved.items():
            for snap_id in history.snapshot_ids(server):
                assert store.load_state(server, snap_id)[1] == saved[snap_id], (server, snap_id)
        assert store.load_state("srv-a")[1] == history.saved["srv-a"][history.ids[-1]]
        with pytest.raises(StoreError, match="is not a snapshot of server"):
            store.load_state("srv-a", history.ids[0])
        # The sync's next unchanged cycle writes nothing.
        latest = history.saved["srv-a"][history.ids[-1]]
        saved = store.save_state("srv-a", latest, source="wgrest_sync", guard=True)
        assert saved.changed is False and saved.counts["peer_rows_written"] == 0
    assert history.counts() == after
    for psk in history.revoked_psks:
        assert psk not in res.output


def test_the_latest_snapshot_is_never_pruned(history):
    res = run_playbook([retention_task(history, keep_days=0, keep_latest=1)])
    assert res.rc == 0, res.output
    assert history.snapshot_ids("srv-a") == [history.ids[-1]]
    assert history.snapshot_ids("srv-b") == [max(history.saved["srv-b"])]
    current = history.sql("SELECT count(*) FROM peers WHERE server_id = 'srv-a' AND valid_to IS NULL")[0][0]
    assert current == len(history.saved["srv-a"][history.ids[-1]]["wg0"].peers)
    closed = history.sql("SELECT count(*) FROM peers WHERE valid_to IS NOT NULL AND valid_to <= %s",
                         (history.ids[-1],))[0][0]
    assert closed == 0, "rows only pruned snapshots needed are still there"
    with history.store() as store:
        for server, saved in history.saved.items():
            latest = max(saved)
            assert store.load_state(server)[1] == saved[latest]


def test_one_a_day_and_only_the_servers_named(history):
    res = run_playbook([retention_task(history, keep_days=0, keep_latest=1, daily_days=5, servers=["srv-a"])])
    assert res.rc == 0, res.output
    # One snapshot a day, 1, 2, 3, 4, 5... days and an hour ago: the last five days (120 hours) hold four.
    assert history.snapshot_ids("srv-a") == history.ids[-4:]
    assert history.snapshot_ids("srv-b") == sorted(history.saved["srv-b"])
    with history.store() as store:
        for snap_id in history.ids[-4:]:
            assert store.load_state("srv-a", snap_id)[1] == history.saved["srv-a"][snap_id]


@pytest.mark.parametrize(("args", "option"), [
    ({"keep_days": -1}, "keep_days"), ({"keep_days": 10 ** 6}, "keep_days"), ({"keep_days": "a week"}, "keep_days"),
    ({"keep_days": 1, "keep_latest": 0}, "keep_latest"), ({"keep_days": 1, "keep_latest": -3}, "keep_latest"),
    ({"keep_days": 1, "keep_latest": 10 ** 9}, "keep_latest"),
    ({"keep_days": 1, "daily_days": -1}, "daily_days"), ({"keep_days": 1, "daily_days": 99999}, "daily_days"),
    ({"keep_days": 1, "batch_size": 0}, "batch_size"), ({"keep_days": 1, "batch_size": 10 ** 7}, "batch_size"),
    ({"keep_days": 1, "servers": ["srv-a", "srv\nb"]}, "servers"), ({"keep_days": 1, "servers": ["srv\x00a"]}, "servers"),
    ({"keep_days": 1, "servers": ["srv\u2028a"]}, "servers"), ({"keep_days": 1, "servers": [""]}, "servers"),
])
def test_bad_options_name_the_option_and_delete_nothing(history, args, option):
    before = history.counts()
    res = run_playbook([retention_task(history, **args)])
    result = res["r"]
    assert result.get("failed"), result
    assert f"{option}" in result["msg"].split(":")[0] or f"'{option}'" in result["msg"], result["msg"]
    assert history.counts() == before


def test_saves_go_on_while_it_prunes_in_small_batches(history):
    """A server saving every few milliseconds during a prune of one-row batches: every save lands, and the
    history it leaves loads."""
    latest = history.saved["srv-a"][history.ids[-1]]
    errors, saved_ids = [], []
    stop = threading.Event()

    def saver():
        with history.store() as store:
            n = 0
            while not stop.is_set() and n < 200:
                state = {"wg0": latest["wg0"].replace(peers=(*latest["wg0"].peers, new_peer(100 + n % 50)))}
                try:
                    saved_ids.append((store.save_state("srv-a", state).snapshot_id, state))
                except Exception as exc:  # reported below
                    errors.append(repr(exc))
                n += 1

    thread = threading.Thread(target=saver)
    thread.start()
    try:
        with history.store() as store:
            done = prune(store, Policy(keep_days=0, keep_latest=1), batch_size=1)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert errors == []
    assert done[0].deleted_rows["peers"] > 0
    with history.store() as store:
        snap_id, state = saved_ids[-1]
        assert store.load_state("srv-a")[0] == snap_id and store.load_state("srv-a")[1] == state
        for kept in history.snapshot_ids("srv-a"):
            match = [s for i, s in saved_ids if i == kept]
            if match:
                assert store.load_state("srv-a", kept)[1] == match[0]


def test_a_run_with_a_server_login_is_refused_by_the_database(history):
    """The servers' logins have no DELETE: retention is the owner's (here a login with SELECT only)."""
    name, password = f"wgsrv_{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    history.sql(f"CREATE ROLE {name} LOGIN PASSWORD %s", (password,))
    try:
        history.sql(f"GRANT SELECT ON schema_version, snapshots, interfaces, server_keys, peers TO {name}")
        if history.sql("SELECT to_regclass('wgfleet_logins') IS NOT NULL")[0][0]:  # row-level security: srv-a's login
            history.sql("INSERT INTO wgfleet_logins (login, server_id) VALUES (%s, 'srv-a')", (name,))
        before = history.counts()
        res = run_playbook([retention_task(history, keep_days=0, login_user=name, login_password=password)])
        msg = res["r"].get("msg", "")
        assert res["r"].get("failed") and ("permission denied" in msg or "row-level security" in msg), res["r"]
        assert history.counts() == before
    finally:
        history.sql(f"REVOKE ALL ON schema_version, snapshots, interfaces, server_keys, peers FROM {name}")
        if history.sql("SELECT to_regclass('wgfleet_logins') IS NOT NULL")[0][0]:
            history.sql("DELETE FROM wgfleet_logins WHERE login = %s", (name,))
        history.sql(f"DROP ROLE {name}")


def test_the_retention_playbook_checks_then_prunes(history):
    p = history.pg.params(history.db)
    extra = {"wgfleet_db_host": p["host"], "wgfleet_db_port": p["port"], "wgfleet_db_owner_user": p["user"],
             "wgfleet_db_owner_password": p["password"], "wgfleet_db_name": history.db, "wgfleet_db_sslmode": "disable",
             "wgfleet_retention_keep_days": 3, "wgfleet_retention_keep_latest": 3}
    before = history.counts()
    rc, data, out = run_book("retention.yml", extra, check=True)
    assert rc == 0, out[-2000:]
    assert history.counts() == before
    assert "would delete 7 snapshots" in task_results(data)["Report what went"]["msg"]
    rc, data, out = run_book("retention.yml", extra)
    assert rc == 0, out[-2000:]
    assert history.snapshot_ids("srv-a") == history.ids[-3:]
    assert "deleted 7 snapshots" in task_results(data)["Report what went"]["msg"]
    assert p["password"] not in out
