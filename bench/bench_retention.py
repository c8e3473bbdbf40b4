"""Benchmark: a simulated year of a fleet's history, with and without a retention policy.

A fleet of --servers servers with --peers peers each on one interface; every simulated day 1% of each server's
peers are replaced (revoked and new ones added), which the sync stores as one snapshot per server and day. The
rows are written with COPY straight into two databases of one PostgreSQL 15 (started by the script): one keeps
everything, the other is pruned every --prune-every days by ``_retention.prune`` (the code of wg_retention) with
the policy keep_days 30, keep_latest 10, then VACUUMed (as autovacuum would). After 30, 180 and 365 days the
script prints each database's history rows and bytes (pg_total_relation_size of the four tables).

Then the prune itself, next to a raw baseline in the same run: copies of the unpruned database at day 365,
pruned by ``_retention.prune`` on one copy and by two bare DELETE statements of exactly the same rows in one
transaction on the other (checked: the same rows are left), median of --runs runs and the ratio.

And a real server ("real-0") saved through ``Store.save_state`` every simulated day (sealed, encrypted), pruned
with the rest: every snapshot it keeps is loaded and compared with the state saved as it, and the next unchanged
save writes 0 rows.

The default run is scaled down to finish in minutes on a loaded 2-core machine; the issue's fleet is
``--servers 200 --peers 1000`` (about 1,000,000 history rows a year).

Run as root from the repository root (needs the PostgreSQL 15 binaries):
    .venv/bin/python bench/bench_retention.py [--servers 20] [--peers 1000] [--days 365] [--runs 3]
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import io
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.helpers.playbook import ensure_collection_path  # noqa: E402

sys.path.insert(0, str(ensure_collection_path()))
import psycopg2  # noqa: E402

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys  # noqa: E402
from ansible_collections.wgfleet.wireguard.plugins.module_utils._retention import Policy, prune  # noqa: E402
from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import KeyCipher, generate_key  # noqa: E402
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store  # noqa: E402
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer  # noqa: E402
from tests.helpers.postgres import PostgresServer  # noqa: E402

POLICY = Policy(keep_days=30, keep_latest=10)
CHECKPOINTS = (30, 180, 365)
SYNTHETIC_IDS = 10 ** 9
TABLES = ("snapshots", "interfaces", "server_keys", "peers")
PEER_COLS = ("server_id", "interface", "public_key", "valid_from", "valid_to", "position", "allowed_ips", "endpoint",
             "persistent_keepalive", "name", "preshared_key", "digest")


def fake_key(rng: random.Random) -> str:
    return base64.b64encode(rng.randbytes(32)).decode()


def hexed(rng: random.Random, n: int) -> str:
    return "\\\\x" + rng.randbytes(n).hex()


class Fleet:
    """The simulated fleet's rows, day by day; ``flush`` writes what the days since the last flush made."""

    def __init__(self, servers: int, peers: int, start: dt.datetime, seed: int = 7):
        self.rng = random.Random(seed)
        self.servers, self.peers, self.start = servers, peers, start
        self.current: list[dict] = [{} for _ in range(servers)]  # server -> public key -> row
        self.pending: list[dict] = []  # rows not written yet (a dict: valid_to may still be set)
        self.closures: list[tuple] = []  # (server_id, public_key, valid_from, valid_to) of written rows
        self.snapshots: list[tuple] = []
        self.base_rows: list[str] = []  # interfaces and server_keys rows, written once
        self.counter = 0

    def snap_id(self, day: int, server: int) -> int:
        return SYNTHETIC_IDS + day * self.servers + server  # far above the sequence the real server's saves use

    def server_id(self, server: int) -> str:
        return f"srv-{server:04d}"

    def _new_peer(self, server: int, sid: int) -> dict:
        self.counter += 1
        row = {"server_id": self.server_id(server), "public_key": fake_key(self.rng), "valid_from": sid,
               "valid_to": None, "position": self.counter << 20, "ip": f"10.{self.counter >> 16 & 255}."
               f"{self.counter >> 8 & 255}.{self.counter & 255}/32", "name": f"client {self.counter}",
               "psk": hexed(self.rng, 60), "digest": hexed(self.rng, 33), "written": False}
        self.current[server][row["public_key"]] = row
        self.pending.append(row)
        return row

    def day(self, day: int) -> None:
        """Day 0: every server's first state; then 1% of each server's peers replaced."""
        for server in range(self.servers):
            sid = self.snap_id(day, server)
            if day == 0:
                for _ in range(self.peers):
                    self._new_peer(server, sid)
                self.base_rows.append(server)
            else:
                replace = max(1, self.peers // 100)
                for key in self.rng.sample(sorted(self.current[server]), replace):
                    row = self.current[server].pop(key)
                    row["valid_to"] = sid
                    if row["written"]:
                        self.closures.append((row["server_id"], key, row["valid_from"], sid))
                for _ in range(replace):
                    self._new_peer(server, sid)
            created = self.start + dt.timedelta(days=day)
            self.snapshots.append((sid, self.server_id(server), created.isoformat(),
                                   self.peers, self.peers if day == 0 else 2 * max(1, self.peers // 100)))

    def flush(self, conn) -> None:
        with conn.cursor() as cur:
            buf = io.StringIO()
            for sid, server, created, peers, written in self.snapshots:
                buf.write(f"{sid}\t{server}\t{created}\twgrest_sync\t1\t{peers}\t{written}\t2\t{{}}\n")
            buf.seek(0)
            cur.copy_expert("COPY snapshots (id, server_id, created_at, source, interface_count, peer_count,"
                            " peer_rows_written, format, interface_digests) FROM STDIN", buf)
            for server in self.base_rows:
                sid, name = self.snap_id(0, server), self.server_id(server)
                cur.execute("INSERT INTO interfaces VALUES (%s, 'wg0', %s, NULL, '{}', %s)",
                            (name, sid, self.rng.randbytes(33)))
                cur.execute("INSERT INTO server_keys VALUES (%s, 'wg0', %s, NULL, %s, %s, %s)",
                            (name, sid, fake_key(self.rng), self.rng.randbytes(60), self.rng.randbytes(33)))
            buf = io.StringIO()
            for row in self.pending:
                buf.write(f"{row['server_id']}\twg0\t{row['public_key']}\t{row['valid_from']}\t"
                          f"{row['valid_to'] if row['valid_to'] is not None else chr(92) + 'N'}\t{row['position']}\t"
                          f"{{{row['ip']}}}\t\\N\t0\t{row['name']}\t{row['psk']}\t{row['digest']}\n")
                row["written"] = True
            buf.seek(0)
            cur.copy_expert(f"COPY peers ({', '.join(PEER_COLS)}) FROM STDIN", buf)
            if self.closures:
                cur.execute("CREATE TEMP TABLE closing (server_id text, public_key text, valid_from bigint,"
                            " valid_to bigint) ON COMMIT DROP")
                buf = io.StringIO("".join(f"{s}\t{k}\t{f}\t{t}\n" for s, k, f, t in self.closures))
                cur.copy_expert("COPY closing FROM STDIN", buf)
                cur.execute("UPDATE peers p SET valid_to = c.valid_to FROM closing c WHERE p.server_id = c.server_id"
                            " AND p.interface = 'wg0' AND p.public_key = c.public_key AND p.valid_from = c.valid_from")
        conn.commit()

    def clear(self) -> None:
        self.pending, self.closures, self.snapshots, self.base_rows = [], [], [], []


def size(conn) -> tuple[int, int]:
    with conn.cursor() as cur:
        rows = 0
        for table in TABLES:
            cur.execute(f"SELECT count(*) FROM {table}")
            rows += cur.fetchone()[0]
        cur.execute("SELECT sum(pg_total_relation_size(t)) FROM unnest(%s::regclass[]) AS t", (list(TABLES),))
        return rows, int(cur.fetchone()[0])


def vacuum(params: dict) -> None:
    conn = psycopg2.connect(**params)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    conn.close()


def raw_delete(conn, now: dt.datetime) -> None:
    """The same rows as the policy, with two bare DELETEs in one transaction (snapshots one a day: the kept ones
    of a server are its newest, so a closed row is needed exactly when it closed after the first kept one)."""
    with conn.cursor() as cur:
        cur.execute("DELETE FROM snapshots WHERE created_at < %s AND id NOT IN (SELECT id FROM (SELECT id,"
                    " row_number() OVER (PARTITION BY server_id ORDER BY id DESC) AS n FROM snapshots) AS r"
                    " WHERE n <= %s)", (now - dt.timedelta(days=POLICY.keep_days), POLICY.keep_latest))
        cur.execute("DELETE FROM peers p USING (SELECT server_id, min(id) AS first_kept FROM snapshots"
                    " GROUP BY server_id) k WHERE p.server_id = k.server_id AND p.valid_to IS NOT NULL"
                    " AND p.valid_to <= k.first_kept")
    conn.commit()


def fingerprint(conn) -> str:
    with conn.cursor() as cur:
        cur.execute("SELECT md5(string_agg(server_id || public_key || valid_from, ',' ORDER BY server_id, public_key,"
                    " valid_from)) FROM peers")
        peers = cur.fetchone()[0]
        cur.execute("SELECT md5(string_agg(id::text, ',' ORDER BY id)) FROM snapshots")
        return f"{peers}/{cur.fetchone()[0]}"


class RealServer:
    """One server saved through the store every simulated day, its saved states kept to compare loads with."""

    def __init__(self, params: dict, peers: int):
        self.store = Store(params, KeyCipher.from_base64(generate_key()))
        self.rng = random.Random(11)
        self.peers = [Peer(public_key=_keys.public_key(_keys.generate_private_key()), allowed_ips=(f"10.250.{i // 250}."
                           f"{i % 250 + 1}/32",), preshared_key=_keys.generate_private_key(), name=f"c{i}")
                      for i in range(peers)]
        self.iface = Interface(private_key=_keys.generate_private_key(), listen_port=51820)
        self.saved: dict[int, dict] = {}
        self.n = peers

    def day(self, day: int, created: dt.datetime) -> None:
        if day:
            for index in self.rng.sample(range(len(self.peers)), max(1, len(self.peers) // 100)):
                self.n += 1
                self.peers[index] = Peer(public_key=_keys.public_key(_keys.generate_private_key()),
                                         allowed_ips=(f"10.251.{self.n // 250 % 250}.{self.n % 250 + 1}/32",),
                                         preshared_key=_keys.generate_private_key(), name=f"c{self.n}")
        state = {"wg0": self.iface.replace(peers=tuple(self.peers))}
        snap_id = self.store.save_state("real-0", state, source="wgrest_sync").snapshot_id
        self.saved[snap_id] = state
        conn = self.store._conn
        with conn.cursor() as cur:
            cur.execute("UPDATE snapshots SET created_at = %s WHERE id = %s", (created, snap_id))
        conn.commit()

    def check(self, conn) -> tuple[int, int]:
        """Every kept snapshot loads as saved; an unchanged save writes nothing. Returns (kept, rows written)."""
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM snapshots WHERE server_id = 'real-0' ORDER BY id")
            kept = [r[0] for r in cur.fetchall()]
        for snap_id in kept:
            if self.store.load_state("real-0", snap_id)[1] != self.saved[snap_id]:
                raise SystemExit(f"real-0: snapshot {snap_id} does not load as it was saved")
        latest = self.saved[kept[-1]]
        again = self.store.save_state("real-0", latest, source="wgrest_sync", guard=True)
        if again.changed:
            raise SystemExit("real-0: the unchanged save after pruning stored a snapshot")
        return len(kept), again.counts["peer_rows_written"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--prune-every", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--real-peers", type=int, default=200, help="peers of the server saved through the store")
    args = parser.parse_args()
    pg = PostgresServer(durable=True)
    try:
        run(pg, args)
    finally:
        pg.destroy()


def run(pg, args) -> None:
    dbs = {"kept": pg.create_database("keep_all"), "policy": pg.create_database("policy")}
    real_db = pg.create_database("real")
    conns = {}
    for kind, db in [*dbs.items(), ("real", real_db)]:
        with Store(pg.params(db), None, allow_plaintext_keys=True) as store:
            store.migrate()
        conns[kind] = psycopg2.connect(**pg.params(db))
    end = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    start = end - dt.timedelta(days=args.days)
    fleets = {kind: Fleet(args.servers, args.peers, start) for kind in dbs}
    real = RealServer(pg.params(real_db), args.real_peers)
    print(f"Retention benchmark: {args.servers} servers x {args.peers} peers, 1% replaced a day, one snapshot per "
          f"server and day; policy keep_days {POLICY.keep_days}, keep_latest {POLICY.keep_latest}, pruned every "
          f"{args.prune_every} days (PostgreSQL 15, fsync on)")
    print(f"{'day':>5} {'rows kept all':>14} {'MB kept all':>12} {'rows policy':>12} {'MB policy':>10}")
    began = time.monotonic()
    for day in range(args.days + 1):
        for fleet in fleets.values():
            fleet.day(day)
        real.day(day, start + dt.timedelta(days=day))
        flush = day == args.days or day in CHECKPOINTS or day % args.prune_every == 0
        if not flush:
            continue
        for kind, fleet in fleets.items():
            fleet.flush(conns[kind])
            fleet.clear()
        if day % args.prune_every == 0 or day in CHECKPOINTS or day == args.days:
            for db in (dbs["policy"], real_db):
                with Store(pg.params(db), None) as store:
                    prune(store, POLICY, now=start + dt.timedelta(days=day, hours=1))
                vacuum(pg.params(db))
        if day in CHECKPOINTS or day == args.days:
            vacuum(pg.params(dbs["kept"]))
            (rows_a, bytes_a), (rows_b, bytes_b) = size(conns["kept"]), size(conns["policy"])
            print(f"{day:>5} {rows_a:>14,} {bytes_a / 1e6:>12.1f} {rows_b:>12,} {bytes_b / 1e6:>10.1f}")
    print(f"(simulated in {time.monotonic() - began:.0f} s)")
    kept, written = real.check(conns["real"])
    print(f"real-0 (saved through the store, {args.real_peers} peers): {kept} kept snapshots each loaded as saved; "
          f"an unchanged save after pruning wrote {written} rows")

    # The prune of the whole unpruned year, next to two bare DELETEs of the same rows, on copies.
    for conn in conns.values():
        conn.close()
    real.store.close()
    now = start + dt.timedelta(days=args.days, hours=1)
    times = {"prune": [], "raw": []}
    deleted = None
    for index in range(args.runs):
        copies = {kind: f"copy_{kind}_{index}" for kind in times}
        for db in copies.values():
            pg.admin(f'CREATE DATABASE "{db}" TEMPLATE keep_all')
        order = ("prune", "raw") if index % 2 == 0 else ("raw", "prune")
        for kind in order:
            params = pg.params(copies[kind])
            if kind == "prune":
                with Store(params, None) as store:
                    began = time.perf_counter()
                    done = prune(store, POLICY, now=now)
                    times[kind].append(time.perf_counter() - began)
                deleted = sum(d.deleted_rows["peers"] for d in done), sum(len(d.deleted_snapshots) for d in done)
            else:
                conn = psycopg2.connect(**params)
                began = time.perf_counter()
                raw_delete(conn, now)
                times[kind].append(time.perf_counter() - began)
                conn.close()
        prints = []
        for kind in times:
            conn = psycopg2.connect(**pg.params(copies[kind]))
            prints.append(fingerprint(conn))
            conn.close()
        if prints[0] != prints[1]:
            raise SystemExit("the raw DELETE left other rows than the prune")
        for db in copies.values():
            pg.drop_database(db)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"prune of day {args.days} ({deleted[1]:,} snapshots, {deleted[0]:,} peer rows; the same rows left as the raw "
          f"DELETE), median of {args.runs} runs:")
    print(f"  wg_retention's prune (batches of 5000, the save's lock): {med['prune']:.2f} s")
    print(f"  raw DELETE of the same rows, one transaction:           {med['raw']:.2f} s")
    print(f"  ratio: {med['prune'] / med['raw']:.2f}")


if __name__ == "__main__":
    if os.geteuid() != 0:
        raise SystemExit("run as root (the PostgreSQL server runs as the postgres user)")
    main()
