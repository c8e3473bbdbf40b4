"""Benchmark of wg_rekey's core: one server with 10,000 peers and a history re-sealed under another key.

The history: a first snapshot of --peers peers, then --snapshots - 1 saves each changing --churn peers (so the
server has peers + (snapshots - 1) * churn peer rows, closed ones included). Each run:

- rekey: rekey_server from the server's current key to the other one (every secret opened and sealed again,
  every row digest and every snapshot seal made again, each snapshot proved under the old key), committed;
- raw UPDATE: the floor of rewriting the same rows, in the same transaction shape: ``UPDATE ... SET digest =
  digest`` (and the sealed columns) of every row of that server in peers, interfaces, server_keys and snapshots,
  committed, nothing computed.

Both directions alternate (A -> B, then B -> A), with VACUUM of the tables before each timed step (not timed).
Median of --runs runs, and the median of each run's own ratio.

Starts its own PostgreSQL 15 (as the postgres user, durable: fsync on) unless --dsn names one. Run as root from
the repository:
    .venv/bin/python bench/bench_rekey.py [--peers 10000] [--snapshots 10] [--churn 100] [--runs 5]
"""
from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.helpers.playbook import ensure_collection_path  # noqa: E402
from tests.helpers.postgres import bench_database  # noqa: E402

sys.path.insert(0, str(ensure_collection_path()))

import psycopg2  # noqa: E402

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys, _secrets  # noqa: E402
from ansible_collections.wgfleet.wireguard.plugins.module_utils._rekey import rekey_server  # noqa: E402
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store  # noqa: E402
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer  # noqa: E402

SERVER = "bench-rekey"


def make_peer(i: int) -> Peer:
    # Random 32-byte strings are valid public keys for the model (deriving real ones is slow).
    return Peer(public_key=base64.b64encode(os.urandom(32)).decode(),
                allowed_ips=(f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}/32", f"fd00::{i:x}/128"),
                endpoint=f"198.51.100.{i % 250 + 1}:{1024 + i % 60000}",
                preshared_key=base64.b64encode(os.urandom(32)).decode(), persistent_keepalive=25, name=f"client-{i}")


def build_history(store: Store, peers: int, snapshots: int, churn: int) -> None:
    iface = Interface(private_key=_keys.generate_private_key(), listen_port=51820, address=("10.0.0.1/16",),
                      peers=tuple(make_peer(i) for i in range(peers)))
    store.save_state(SERVER, {"wg0": iface})
    current = list(iface.peers)
    for step in range(1, snapshots):
        for j in range(churn):
            index = (step * churn + j) % peers
            current[index] = current[index].replace(persistent_keepalive=100 + step)
        assert store.save_state(SERVER, {"wg0": iface.replace(peers=tuple(current))}).changed


def raw_update(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("UPDATE peers SET preshared_key = preshared_key, digest = digest WHERE server_id = %s", (SERVER,))
        cur.execute("UPDATE interfaces SET digest = digest WHERE server_id = %s", (SERVER,))
        cur.execute("UPDATE server_keys SET private_key = private_key, digest = digest WHERE server_id = %s",
                    (SERVER,))
        cur.execute("UPDATE snapshots SET key_id = key_id, interface_digests = interface_digests, seal = seal"
                    " WHERE server_id = %s", (SERVER,))
    conn.commit()


def vacuum(params: dict) -> None:
    conn = psycopg2.connect(**params)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE peers, interfaces, server_keys, snapshots")
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--snapshots", type=int, default=10)
    parser.add_argument("--churn", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dsn", help="an existing server (libpq connection string); default: start one")
    args = parser.parse_args()
    with bench_database(args.dsn) as params:
        run(params, args)


def run(params: dict, args) -> None:
    keys = [_secrets.KeyCipher.from_base64(_secrets.generate_key()) for _ in range(2)]
    with Store(params, keys[0]) as store:
        store.migrate()
        build_history(store, args.peers, args.snapshots, args.churn)
    raw = psycopg2.connect(**params)
    with raw.cursor() as cur:
        cur.execute("SELECT count(*) FROM peers WHERE server_id = %s", (SERVER,))
        peer_rows = cur.fetchone()[0]
    raw.commit()
    rekey_times, raw_times, ratios, resealed = [], [], [], []
    store = Store(params, None)
    for run_index in range(args.runs):
        old, new = keys[run_index % 2], keys[1 - run_index % 2]
        vacuum(params)
        start = time.perf_counter()
        result = rekey_server(store, SERVER, new, old)
        rekey_times.append(time.perf_counter() - start)
        resealed.append(result.rows["peers"])
        vacuum(params)
        start = time.perf_counter()
        raw_update(raw)
        raw_times.append(time.perf_counter() - start)
        ratios.append(rekey_times[-1] / raw_times[-1])
    store.close()
    raw.close()
    rekey_ms, raw_ms = statistics.median(rekey_times) * 1000, statistics.median(raw_times) * 1000
    print(f"wg_rekey benchmark: {args.peers} peers, {args.snapshots} snapshots ({args.churn} peers changed in each "
          f"after the first: {peer_rows} peer rows), median of {args.runs} runs (ms)")
    print(f"{'scenario':<30}{'ours':>10}{'raw UPDATE':>14}{'ratio':>8}")
    print(f"{'rekey (all rows, all seals)':<30}{rekey_ms:>10.1f}{raw_ms:>14.1f}{rekey_ms / raw_ms:>8.2f}")
    ratios.sort()
    print(f"{'  per run':<30}{'':>10}{'':>14}{statistics.median(ratios):>8.2f}   median of the runs' own ratios "
          f"(min {ratios[0]:.2f}, max {ratios[-1]:.2f}); peer rows re-sealed per run: {max(resealed)}")


if __name__ == "__main__":
    main()
