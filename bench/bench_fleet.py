"""Benchmark: a fleet of servers syncing into one PostgreSQL, through the real capture, store and service code.

Each server is a ``wgrest-sync`` (``_sync.SyncService.run_once``: capture, guarded save,
sync_status) whose wgrest read is replaced by a prepared state: its wg-quick file
(interface settings, 100 labelled peers) is real and parsed every cycle by
``_backup.capture``; the live peers (1,000 by default, each with a preshared key)
come from memory instead of HTTP. One cycle of every server is one minute of fleet
time (the service's 60 s interval).

The fleet grows 50 -> 100 -> 200 servers (``--sizes``); at each size it reports:

- an unchanged cycle (the median of three): peer rows written (must be 0), PostgreSQL CPU for the cycle
  (= per minute of fleet time; the aim is under 5% of one core, i.e. 3 s), the sync
  side's CPU, and the wall time;
- a cycle where 1% of every server's peers changed (allowed IPs of 1 peer in 100):
  the same figures and the rows written;
- the raw baseline, measured in the same run: per server, one ``COPY ... TO`` of its
  current peer digests (the least a save that compares rows has to read); the ratio
  quoted is PostgreSQL CPU (the sync side's CPU is spent on each server, not centrally).

Two ways of logging in, in the same run and on the same PostgreSQL (``--modes``):

- ``rls``: schema version 3 as the database role leaves it, one login per server (a
  member of ``wgfleet_server`` mapped in ``wgfleet_logins``), row-level security on;
- ``legacy``: the way before it, one login for every server, row-level security off
  (disabled on the tables of a second database), the same GRANTs.

Every server's cycle runs as its login: the shared connection switches with ``SET SESSION
AUTHORIZATION`` (session_user is what the policies look up), in both modes alike.

PostgreSQL CPU is read from /proc (user + system time of the postmaster, its
backends and its background processes, reaped ones included). It starts its own
PostgreSQL 15 (durable: fsync on). Run as root from the repository root:

    .venv/bin/python bench/bench_fleet.py [--sizes 50,100] [--peers 1000] [--modes rls,legacy]
"""
from __future__ import annotations

import argparse
import base64
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.helpers.playbook import ensure_collection_path  # noqa: E402

sys.path.insert(0, str(ensure_collection_path()))

from ansible_collections.wgfleet.wireguard.plugins.module_utils import (  # noqa: E402
    _backup,
    _files,
    _keys,
    _secrets,
    _sync,
)
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store  # noqa: E402
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer  # noqa: E402
from tests.helpers.live import LiveState  # noqa: E402
from tests.helpers.postgres import PostgresServer, ensure_group_roles, grant_sql, role_privileges  # noqa: E402

LABELLED = 100  # peers listed (with a label) in each server's wg-quick file
TICK = os.sysconf("SC_CLK_TCK")


class FleetMember(_sync.SyncService):
    """The real service, with its wgrest read replaced by a prepared source and a shared connection."""

    def __init__(self, config, source: LiveState, store: Store, login: str):
        super().__init__(config)
        self.source = source
        self.store = store
        self.login = login

    def run_as_login(self):
        conn = self.store._conn
        with conn.cursor() as cur:
            cur.execute("SET SESSION AUTHORIZATION %s", (self.login,))
        conn.commit()
        return self.run_once()

    def capture(self):
        state, _live_only = _backup.capture(self.config.config_dir, self.source, lock=False)
        return state

    def _drop_store(self) -> None:
        raise AssertionError("the benchmark's connection failed")


def random_key() -> str:
    # Valid for the model (32 bytes of base64); deriving real key pairs for 200,000 peers would take minutes.
    return base64.b64encode(os.urandom(32)).decode()


def make_server(index: int, peers: int, base: Path) -> tuple[Path, Interface]:
    live = tuple(Peer(public_key=random_key(), preshared_key=random_key(), persistent_keepalive=25,
                      allowed_ips=(f"10.{64 + index // 64}.{(index % 64) * 4 + p // 250}.{p % 250 + 1}/32",))
                 for p in range(peers))
    settings = Interface(private_key=_keys.generate_private_key(), listen_port=51820, address=("10.10.0.1/24",),
                         mtu=1420, post_up=("iptables -A FORWARD -i %i -j ACCEPT",))
    config_dir = base / f"srv{index:03d}"
    file_peers = tuple(p.replace(name=f"client {i}") for i, p in enumerate(live[:LABELLED]))
    _files.write_config(_files.config_path(str(config_dir), "wg0"), settings.replace(peers=file_peers))
    return config_dir, settings.replace(peers=live)


def pg_cpu(data_dir: Path) -> float:
    """CPU seconds used so far by the PostgreSQL server: postmaster, live children, reaped children."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        if pid == postmaster:
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        elif ppid == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def cycle(members, pg, data_dir, db) -> dict:
    rows_before = pg.admin("SELECT count(*) FROM peers", dbname=db)[0][0]
    cpu0, sync0, wall0 = pg_cpu(data_dir), time.process_time(), time.perf_counter()
    written, failed = 0, 0
    for member in members:
        result = member.run_as_login()
        failed += not result.ok
        written += result.counts.get("peer_rows_written", 0) if result.ok else 0
    out = {"pg_cpu": pg_cpu(data_dir) - cpu0, "sync_cpu": time.process_time() - sync0,
           "wall": time.perf_counter() - wall0, "written": written, "failed": failed,
           "rows_added": pg.admin("SELECT count(*) FROM peers", dbname=db)[0][0] - rows_before}
    return out


def raw_baseline(members, conn, data_dir) -> dict:
    cpu0, wall0 = pg_cpu(data_dir), time.perf_counter()
    for member in members:
        buf = io.StringIO()
        with conn.cursor() as cur:
            cur.copy_expert(cur.mogrify("COPY (SELECT interface, public_key, position, digest FROM peers"
                                        " WHERE server_id = %s AND valid_to IS NULL) TO STDOUT",
                                        (member.config.server_id,)).decode(), buf)
        conn.commit()
    return {"pg_cpu": pg_cpu(data_dir) - cpu0, "wall": time.perf_counter() - wall0}


def change_one_percent(member: FleetMember, round_: int) -> None:
    """One peer in 100 gets another allowed IP (an address that names the round: each round changes)."""
    device = member.source.devices["wg0"]
    peers = list(device.peers)
    for i in range(0, len(peers), 100):
        peers[i] = peers[i].replace(allowed_ips=(peers[i].allowed_ips[0], f"fd{round_:02x}::{i:x}/128"))
    member.source.devices["wg0"] = device.replace(peers=tuple(peers))


def prepare(pg, mode: str, cipher) -> tuple[str, Store]:
    """The mode's database, its schema, GRANTs and (rls) row-level security; a store connected as the superuser,
    which each member's cycle turns into that member's login."""
    db = pg.create_database(f"fleet_{mode}")
    params = pg.params(db)
    store = Store(params, cipher)
    store.migrate()
    ensure_group_roles(pg)
    pg.admin(grant_sql(role_privileges(db)), dbname=db)
    if mode == "legacy":
        for table in ("snapshots", "interfaces", "server_keys", "peers", "sync_status"):
            pg.admin(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY", dbname=db)
        pg.admin("CREATE ROLE bench_legacy_sync IN ROLE wgfleet_server")
    return db, store


def check_mode_is_real(member: FleetMember, mode: str) -> None:
    """rls: a member's login is under row-level security and sees its own server only; legacy: it sees all."""
    conn = member.store._conn
    with conn.cursor() as cur:
        cur.execute("SET SESSION AUTHORIZATION %s", (member.login,))
        cur.execute("SELECT row_security_active('peers'), count(DISTINCT server_id) FROM snapshots")
        active, servers = cur.fetchone()
        cur.execute("RESET SESSION AUTHORIZATION")
    conn.commit()
    assert active == (mode == "rls") and (servers == 1) == (mode == "rls" or servers == 1), (mode, active, servers)


def add_login(pg, mode: str, db: str, server_id: str, index: int) -> str:
    if mode == "legacy":
        return "bench_legacy_sync"
    login = f"bench_srv_{index:03d}"
    pg.admin(f"CREATE ROLE {login} IN ROLE wgfleet_server")
    pg.admin("INSERT INTO wgfleet_logins (login, server_id) VALUES (%s, %s)", dbname=db, params=(login, server_id))
    return login


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50,100", help="fleet sizes, growing (default 50,100)")
    parser.add_argument("--peers", type=int, default=1000, help="peers per server (default 1000)")
    parser.add_argument("--modes", default="rls,legacy", help="rls (per-server logins), legacy (one login, no RLS)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = args.modes.split(",")

    base = Path(tempfile.mkdtemp(prefix="wgfleet-bench-fleet-"))
    pg = PostgresServer(durable=True)
    try:
        key_file = base / "key"
        key_file.write_text(_secrets.generate_key())
        cipher = _secrets.KeyCipher.from_file(str(key_file))
        import psycopg2

        dbs, stores, raws = {}, {}, {}
        for mode in modes:
            dbs[mode], stores[mode] = prepare(pg, mode, cipher)
            raws[mode] = psycopg2.connect(**pg.params(dbs[mode]))
        servers: list[tuple[Path, Interface]] = []
        members: dict[str, list[FleetMember]] = {mode: [] for mode in modes}
        print(f"fleet benchmark: {args.peers} peers per server ({LABELLED} in the wg-quick file), "
              f"one cycle = one minute of fleet time; PostgreSQL CPU from /proc; modes {', '.join(modes)}")
        header = (f"{'servers':>7} {'mode':<6} {'cycle':<16} {'rows written':>12} {'PG CPU s':>9} {'PG % core':>9} "
                  f"{'sync CPU s':>10} {'wall s':>7}")
        lines = [header]
        unchanged_cpu: dict[tuple[int, str], float] = {}
        for size in sizes:
            while len(servers) < size:
                servers.append(make_server(len(servers), args.peers, base))
            for mode in modes:
                db, fleet = dbs[mode], members[mode]
                t0 = time.perf_counter()
                added = size - len(fleet)
                while len(fleet) < size:
                    index = len(fleet)
                    config_dir, live = servers[index]
                    server_id = f"fleet-{index:03d}"
                    config = _sync.SyncConfig(server_id=server_id, db=pg.params(db), interval=60,
                                              wgrest_token="unused", config_dir=str(config_dir),
                                              encryption_key_file=str(key_file),
                                              status_file=str(base / f"st-{mode}-{index}"))
                    fleet.append(FleetMember(config, LiveState({"wg0": live}), stores[mode],
                                             add_login(pg, mode, db, server_id, index)))
                first = cycle(fleet[-added:], pg, pg.data, db)
                assert first["failed"] == 0, "a first save failed"
                check_mode_is_real(fleet[0], mode)
                setup = time.perf_counter() - t0
                # The bulk of a first save done, so that autovacuum does not land in a measured minute.
                pg.admin("VACUUM ANALYZE", dbname=db)
                runs = sorted((cycle(fleet, pg, pg.data, db) for _ in range(3)), key=lambda c: c["pg_cpu"])
                assert all(c["failed"] == 0 and c["rows_added"] == 0 for c in runs), runs
                unchanged = runs[1]  # the median of three unchanged minutes
                unchanged_cpu[size, mode] = unchanged["pg_cpu"]
                raw_read = raw_baseline(fleet, raws[mode], pg.data)
                for member in fleet:
                    change_one_percent(member, sizes.index(size) + 1)
                changed = cycle(fleet, pg, pg.data, db)
                assert changed["failed"] == 0, changed
                again = cycle(fleet, pg, pg.data, db)  # settles: the next minute has no change again
                assert again["rows_added"] == 0
                for name, c in (("unchanged", unchanged), ("1% changed", changed)):
                    lines.append(f"{size:>7} {mode:<6} {name:<16} {c['rows_added']:>12} {c['pg_cpu']:>9.2f} "
                                 f"{100 * c['pg_cpu'] / 60:>8.1f}% {c['sync_cpu']:>10.2f} {c['wall']:>7.2f}")
                lines.append(f"{size:>7} {mode:<6} {'raw digest read':<16} {'-':>12} {raw_read['pg_cpu']:>9.2f} "
                             f"{100 * raw_read['pg_cpu'] / 60:>8.1f}% {'-':>10} {raw_read['wall']:>7.2f}")
                lines.append(f"{'':>7} (PostgreSQL CPU, unchanged cycle / raw digest read: "
                             f"{unchanged['pg_cpu'] / max(raw_read['pg_cpu'], 0.01):.2f}; "
                             f"{added} new servers stored and set up in {setup:.1f}s)")
                print("\n".join(lines[-4:]), flush=True)
        print("\n" + "\n".join(lines))
        for size in sizes:
            if (size, "rls") in unchanged_cpu and (size, "legacy") in unchanged_cpu:
                print(f"{size} servers, unchanged minute, PostgreSQL CPU rls / legacy: "
                      f"{unchanged_cpu[size, 'rls'] / max(unchanged_cpu[size, 'legacy'], 0.01):.2f}")
        for mode in modes:
            peers_rows = pg.admin("SELECT count(*) FROM peers", dbname=dbs[mode])[0][0]
            size_mb = pg.admin("SELECT pg_database_size(current_database()) / 1048576.0", dbname=dbs[mode])[0][0]
            print(f"{mode}: peer rows stored: {peers_rows}, database size {size_mb:.0f} MB")
            raws[mode].close()
            stores[mode].close()
        return 0
    finally:
        pg.destroy()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
