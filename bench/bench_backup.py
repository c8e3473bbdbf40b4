"""Benchmark of the PostgreSQL store: 10,000 peers on one interface.

Scenarios (each the median of --runs runs, next to a raw baseline measured in
the same run on the same server):

- backup: Store.save_state of a new server (keys sealed, digests, diff, COPY, commit)
  vs a raw COPY of the same peer rows (already sealed, digested and formatted as
  COPY text) into a scratch table made LIKE peers INCLUDING ALL (same columns and
  indexes), committed: only the COPY and the commit are timed.
- unchanged re-backup: save_state of the same state again (must write 0 peer rows)
  vs the same raw COPY.
- one-peer change: save_state with one peer edited (must write 1 peer row).
- restore: Store.load_state (read, decrypt, check digests, build the model)
  vs a raw COPY ... TO STDOUT of the same rows (the honest baseline: reading), both after an
  untimed read of the new rows (the first read sets their hint bits), and vs
  the raw COPY in; the per-run ratio (each run's restore over that run's COPY out) is
  printed too, as it holds better than a ratio of medians when the machine's load drifts; and the CPU
  both took (this process and the PostgreSQL backend serving it, summed over the runs), which holds
  when the machine is so loaded that the wall clock mostly measures waiting for a core.

Starts its own PostgreSQL 15 (as the postgres user, durable: fsync on) unless
--dsn names one. Run as root from the repository:
    .venv/bin/python bench/bench_backup.py [--peers 10000] [--runs 5]
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.helpers.playbook import ensure_collection_path  # noqa: E402
from tests.helpers.postgres import bench_database  # noqa: E402

sys.path.insert(0, str(ensure_collection_path()))

import psycopg2  # noqa: E402

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys, _secrets  # noqa: E402
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store  # noqa: E402
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store_codec import (  # noqa: E402
    PEER_COLUMNS,
    PEER_VALUES,
    _context,
    _copy_text,
    _peer_digest_input,
    peer_values,
)
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer  # noqa: E402


def make_state(count: int) -> Interface:
    # Distinct keys are expensive to derive; random 32-byte strings are valid public keys for the model.
    import base64
    import os

    peers = []
    for i in range(count):
        peers.append(Peer(
            public_key=base64.b64encode(os.urandom(32)).decode(),
            allowed_ips=(f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}/32", f"fd00::{i:x}/128"),
            endpoint=f"198.51.100.{i % 250 + 1}:{1024 + i % 60000}",
            preshared_key=base64.b64encode(os.urandom(32)).decode(),
            persistent_keepalive=25,
            name=f"client-{i}",
        ))
    return Interface(private_key=_keys.generate_private_key(), listen_port=51820, address=("10.0.0.1/16",),
                     peers=tuple(peers))


def raw_rows(server_id: str, iface: Interface, cipher) -> list[tuple]:
    """The rows save_state writes, built beforehand (sealing and digests are not timed in the baseline)."""
    rows = []
    for pos, peer in enumerate(iface.peers):
        psk = cipher.seal(peer.preshared_key, _context("preshared_key", server_id, "wg0", peer.public_key))
        dig = _secrets.digest(cipher, _peer_digest_input(server_id, "wg0", peer))
        rows.append((server_id, "wg0", peer.public_key, 1, pos << 20, *peer_values(peer), psk, dig))
    return rows


def backend_cpu(pid: int) -> float | None:
    """CPU seconds used so far by a local PostgreSQL backend (user + system, in clock ticks); None if remote."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_timed(fn, pid: int) -> tuple[float, float | None]:
    """(wall seconds, CPU seconds of this process and of backend ``pid``) of ``fn()``."""
    server, client = backend_cpu(pid), time.process_time()
    wall = timed(fn)
    client = time.process_time() - client
    after = backend_cpu(pid)
    return wall, (client + after - server) if server is not None and after is not None else None


def timed(fn) -> float:
    return timed_result(fn)[0]


def timed_result(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dsn", help="an existing server (libpq connection string); default: start one")
    args = parser.parse_args()

    with bench_database(args.dsn) as params:
        run(params, args.peers, args.runs)


def run(params: dict, count: int, runs: int) -> None:
    cipher = _secrets.KeyCipher.from_base64(_secrets.generate_key())
    iface = make_state(count)
    state = {"wg0": iface}
    store = Store(params, cipher)
    store.migrate()
    raw = psycopg2.connect(**params)
    with raw.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_raw_peers")
        cur.execute("CREATE TABLE bench_raw_peers (LIKE peers INCLUDING ALL)")
    raw.commit()
    raw_pid = raw.get_backend_pid()
    store_pid = store._conn.get_backend_pid()  # the store keeps one connection (see Store._transaction)
    cpu = {"restore": [], "raw_copy_out": []}

    results: dict[str, list[float]] = {k: [] for k in (
        "backup", "raw_copy_in", "unchanged", "one_peer", "restore", "raw_copy_out", "model_only")}
    rows_written = {"unchanged": [], "one_peer": []}
    edited = list(iface.peers)
    edited[count // 2] = edited[count // 2].replace(persistent_keepalive=7)
    edited_state = {"wg0": iface.replace(peers=tuple(edited))}

    for _ in range(runs):
        server_id = f"bench-{uuid.uuid4().hex[:8]}"
        rows = raw_rows(server_id, iface, cipher)

        text = "".join("\t".join(map(_copy_text, row)) + "\n" for row in rows)
        with raw.cursor() as cur:
            cur.execute("TRUNCATE bench_raw_peers")
        raw.commit()

        def copy_in(text=text):
            # Only the COPY and its commit are timed: the rows are formatted beforehand.
            with raw.cursor() as cur:
                cur.copy_expert(f"COPY bench_raw_peers ({', '.join(PEER_COLUMNS)}) FROM STDIN", io.StringIO(text))
            raw.commit()

        results["raw_copy_in"].append(timed(copy_in))
        results["backup"].append(timed(lambda sid=server_id: store.save_state(sid, state)))
        seconds, saved = timed_result(lambda sid=server_id: store.save_state(sid, state))
        results["unchanged"].append(seconds)
        rows_written["unchanged"].append(saved.counts["peer_rows_written"])
        seconds, saved = timed_result(lambda sid=server_id: store.save_state(sid, edited_state))
        results["one_peer"].append(seconds)
        rows_written["one_peer"].append(saved.counts["peer_rows_written"])

        def copy_out(sid=server_id):
            buf = io.StringIO()
            with raw.cursor() as cur:
                cur.copy_expert(
                    f"COPY (SELECT public_key, {', '.join(PEER_VALUES)}, preshared_key, digest"
                    f" FROM peers WHERE server_id = '{sid}' AND valid_to IS NULL ORDER BY position) TO STDOUT", buf)
            raw.commit()

        # Untimed: the first read of rows just written sets their hint bits (it writes the pages), and
        # whichever read came first would pay for it.
        copy_out()
        for name, fn, pid in (("raw_copy_out", copy_out, raw_pid),
                              ("restore", lambda sid=server_id: store.load_state(sid), store_pid)):
            wall, used = cpu_timed(fn, pid)
            results[name].append(wall)
            cpu[name].append(used)
        # The model's own cost: building the same 10,000 Peer objects from plain values, no database.
        plain = [p.to_dict(redact=False) for p in edited]
        results["model_only"].append(timed(lambda plain=plain: [Peer(**v) for v in plain]))

    med = {k: statistics.median(v) * 1000 for k, v in results.items()}
    print(f"PostgreSQL store benchmark: {count} peers on one interface, median of {runs} runs (ms)")
    print(f"{'scenario':<28}{'ours':>10}{'raw baseline':>16}{'ratio':>8}   notes")
    print(f"{'backup (new server)':<28}{med['backup']:>10.1f}{med['raw_copy_in']:>16.1f}"
          f"{med['backup'] / med['raw_copy_in']:>8.2f}   baseline: raw COPY in of the same rows")
    print(f"{'unchanged re-backup':<28}{med['unchanged']:>10.1f}{med['raw_copy_in']:>16.1f}"
          f"{med['unchanged'] / med['raw_copy_in']:>8.2f}   peer rows written: {max(rows_written['unchanged'])}")
    print(f"{'one-peer change':<28}{med['one_peer']:>10.1f}{med['raw_copy_in']:>16.1f}"
          f"{med['one_peer'] / med['raw_copy_in']:>8.2f}   peer rows written: {max(rows_written['one_peer'])}")
    print(f"{'restore (load_state)':<28}{med['restore']:>10.1f}{med['raw_copy_out']:>16.1f}"
          f"{med['restore'] / med['raw_copy_out']:>8.2f}   baseline: raw COPY out of the same rows")
    pairs = sorted(r / b for r, b in zip(results["restore"], results["raw_copy_out"], strict=True))
    print(f"{'  restore / COPY out, per run':<28}{'':>10}{'':>16}{statistics.median(pairs):>8.2f}   "
          f"median of the {len(pairs)} runs' own ratios (min {pairs[0]:.2f}, max {pairs[-1]:.2f})")
    if None not in cpu["restore"] + cpu["raw_copy_out"]:
        used, raw_used = sum(cpu["restore"]) * 1000, sum(cpu["raw_copy_out"]) * 1000
        print(f"{'  restore / COPY out, CPU':<28}{used / runs:>10.1f}{raw_used / runs:>16.1f}{used / raw_used:>8.2f}   "
              f"CPU of this process and its PostgreSQL backend, mean of the {runs} runs")
    print(f"{'restore (load_state)':<28}{med['restore']:>10.1f}{med['raw_copy_in']:>16.1f}"
          f"{med['restore'] / med['raw_copy_in']:>8.2f}   baseline: raw COPY in")
    print(f"{'  of which model (Peer())':<28}{med['model_only']:>10.1f}{'':>16}{'':>8}   "
          "building the Peer objects alone, no database")
    store.close()
    raw.close()


if __name__ == "__main__":
    main()
