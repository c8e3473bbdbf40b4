"""Benchmark: one wgrest-sync cycle over 10,000 peers when nothing changed.

Measures, for the sync process only (the real wgrest and PostgreSQL run in
their own processes), the CPU time of one ``SyncService.run_once()`` and the
peer rows it writes, next to two raw baselines measured in the same run:

- ``raw HTTP``: fetching the same 10,000 peers page by page with bare urllib
  and ``json.loads`` (the least any reader of the wgrest API pays);
- ``raw wg dump``: one ``wg show NAME dump`` of the device, split into fields
  (CPU of the child ``wg`` included).

Prints the median of N runs of each, and our ratio to each baseline.

Run as root from the repository root (needs wireguard-go and PostgreSQL 15 binaries):
    .venv/bin/python bench/bench_sync.py [--peers 10000] [--runs 5]
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.helpers.playbook import ensure_collection_path  # noqa: E402

sys.path.insert(0, str(ensure_collection_path()))
from ansible_collections.wgfleet.wireguard.plugins.module_utils import (  # noqa: E402
    _files,
    _keys,
    _secrets,
    _sync,
    _wgconf,
    _wgrest_dump,
)
from tests.helpers.netns import Lab  # noqa: E402
from tests.helpers.postgres import PostgresServer  # noqa: E402
from tests.helpers.wgrest_real import WgrestHost  # noqa: E402

TOKEN = "bench-token"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def raw_http(api_url: str, name: str) -> int:
    count, page = 0, 0
    while True:
        req = urllib.request.Request(f"{api_url}/v1/devices/{name}/peers/?page={page}&per_page=100&sort=pub_key",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            items = json.loads(resp.read())
        if not items:
            return count
        count += len(items)
        page += 1


def raw_dump(host, name: str) -> int:
    out = host.run("wg", "show", name, "dump").stdout
    return len([line.split("\t") for line in out.splitlines()[1:]])


def measure(func) -> tuple[float, float, object]:
    """(CPU seconds of this process and its children, wall seconds, result)."""
    cpu0, child0, wall0 = time.process_time(), children_cpu(), time.perf_counter()
    result = func()
    return time.process_time() - cpu0 + children_cpu() - child0, time.perf_counter() - wall0, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    lab, pg = Lab(), None
    base = Path(tempfile.mkdtemp(prefix="wgsync-bench-"))
    try:
        pg = PostgresServer()
        pg.create_database("bench")
        host = WgrestHost(lab, "bench")
        name = lab.wg_name("k")
        etc = base / "etc"
        _files.write_config(_files.config_path(str(etc), name), _wgconf.Interface(
            private_key=_keys.generate_private_key(), listen_port=51820, address=["10.200.0.1/16"],
            post_up=[_wgrest_dump.restore_hook(str(base / "wgrest"))]))
        host.quick("up", _files.config_path(str(etc), name))
        lines = ["[Interface]"]
        for i in range(args.peers):
            lines += ["[Peer]", f"PublicKey = {_keys.public_key(_keys.generate_private_key())}",
                      f"PresharedKey = {_keys.generate_private_key()}",
                      f"AllowedIPs = 10.200.{i // 250}.{i % 250 + 2}/32", "PersistentKeepalive = 25"]
        host.run("wg", "addconf", name, "/dev/stdin", input="\n".join(lines) + "\n")
        host.start_wgrest(base / "wgrest", token=TOKEN)
        key_file = base / "key"
        key_file.write_text(_secrets.generate_key())
        config = _sync.SyncConfig(
            server_id="bench", db=pg.params("bench"), interval=60, wgrest_url=host.api_url, wgrest_token=TOKEN,
            wgrest_timeout=120, config_dir=str(etc), encryption_key_file=str(key_file),
            status_file=str(base / "status.json"))
        service = _sync.SyncService(config)

        first_cpu, first_wall, first = measure(service.run_once)
        assert first.ok, first.error
        peers_rows = pg.admin("SELECT count(*) FROM peers", dbname="bench")[0][0]

        ours, ours_wall, http, http_wall, dump, dump_wall, written = [], [], [], [], [], [], []
        for _ in range(args.runs):
            cpu, wall, result = measure(service.run_once)
            assert result.ok and not result.changed, result.error
            ours.append(cpu)
            ours_wall.append(wall)
            written.append(result.counts["peer_rows_written"])
            cpu, wall, count = measure(lambda: raw_http(host.api_url, name))
            assert count == args.peers
            http.append(cpu)
            http_wall.append(wall)
            cpu, wall, count = measure(lambda: raw_dump(host, name))
            assert count == args.peers
            dump.append(cpu)
            dump_wall.append(wall)
        assert pg.admin("SELECT count(*) FROM peers", dbname="bench")[0][0] == peers_rows
        snapshots = pg.admin("SELECT count(*) FROM snapshots", dbname="bench")[0][0]

        med = statistics.median
        print(f"wgrest-sync cycle, {args.peers} peers, no change; median of {args.runs} runs (CPU of the sync "
              f"process; wall in brackets)")
        print(f"  first cycle (stores everything):   CPU {first_cpu:.3f}s [{first_wall:.2f}s], "
              f"{first.counts['peer_rows_written']} peer rows written")
        print(f"  ours, unchanged cycle:             CPU {med(ours):.3f}s [{med(ours_wall):.2f}s], "
              f"peer rows written: {max(written)}, snapshots in DB: {snapshots}")
        print(f"  baseline raw HTTP fetch of peers:  CPU {med(http):.3f}s [{med(http_wall):.2f}s]   "
              f"ratio ours/raw = {med(ours) / med(http):.2f}")
        print(f"  baseline raw `wg show dump`:       CPU {med(dump):.3f}s [{med(dump_wall):.2f}s]   "
              f"ratio ours/raw = {med(ours) / med(dump):.2f}")
        service._drop_store()
        return 0
    finally:
        lab.close()
        if pg is not None:
            pg.destroy()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
