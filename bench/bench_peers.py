"""Benchmark: one interface with 10,000 peers through wg_peer's bulk form, next to the raw way.

Raw baseline, measured in the same run on the same device: the whole wg-quick
file written at once, then ``wg syncconf NAME <(wg-quick strip FILE)``.

Scenarios: first apply (device and file without peers), an unchanged re-run,
one peer changed among 10,000. "ours" is the core call the module makes
(FileBackend.apply: parse the file, read the device, plan, write, apply);
"module" is the same through ansible-playbook, Ansible's own start-up and
argument checking included.

Run as root: ``python bench/bench_peers.py [--peers N] [--runs N] [--no-module]``.
It makes a network namespace with a wireguard-go interface and removes both.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers.netns import inner_arguments, run_in_lab, sh  # noqa: E402
from tests.helpers.playbook import ensure_collection_path  # noqa: E402

sys.path.insert(0, str(ensure_collection_path()))

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _files  # noqa: E402
from ansible_collections.wgfleet.wireguard.plugins.module_utils._interface import InterfaceRequest, ensure  # noqa: E402
from ansible_collections.wgfleet.wireguard.plugins.module_utils._peers import FileBackend, PeerSpec  # noqa: E402


def peer_params(count: int, changed: int | None = None) -> list[dict]:
    peers = []
    for i in range(count):
        key = base64.b64encode(hashlib.sha256(f"bench-peer-{i}".encode()).digest()).decode()
        keepalive = 25 if i == changed else 0
        peers.append({"public_key": key, "allowed_ips": [f"10.20.{i // 256}.{i % 256}/32"],
                      "persistent_keepalive": keepalive, "state": "present", "endpoint": None,
                      "preshared_key": None, "name": None})
    return peers


def raw_text(base: str, peers: list[dict]) -> str:
    parts = [base]
    for p in peers:
        parts.append(f"\n[Peer]\nPublicKey = {p['public_key']}\nAllowedIPs = {p['allowed_ips'][0]}\n")
        if p["persistent_keepalive"]:
            parts.append(f"PersistentKeepalive = {p['persistent_keepalive']}\n")
    return "".join(parts)


def inner(args) -> None:
    """Runs inside the namespace: every measurement, printed as JSON."""
    name, config_dir = args.name, args.config_dir
    path = _files.config_path(config_dir, name)
    ensure(InterfaceRequest(name=name, config_dir=config_dir, settings={"address": ["10.20.255.254/16"],
                                                                        "listen_port": 51820}), False)
    base = Path(path).read_text()
    all_peers = peer_params(args.peers)
    one_changed = peer_params(args.peers, changed=args.peers // 2)

    def reset():
        _files.write_atomic(path, base)
        sh("bash", "-c", f"wg syncconf {name} <(wg-quick strip {path})")

    def raw(peers):
        t0 = time.perf_counter()
        with open(path, "w") as handle:
            handle.write(raw_text(base, peers))
        sh("bash", "-c", f"wg syncconf {name} <(wg-quick strip {path})")
        return time.perf_counter() - t0

    def ours(peers):
        specs = [PeerSpec.from_params(p) for p in peers]
        t0 = time.perf_counter()
        FileBackend(name, config_dir).apply(specs, exclusive=False, check_mode=False)
        return time.perf_counter() - t0

    def playbook(peers, task):
        vars_file = Path(config_dir) / "peers.json"
        vars_file.write_text(json.dumps({"bench_peers": peers}))
        play = Path(config_dir) / "play.yml"
        play.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n    - " + task + "\n")
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ensure_collection_path()))
        t0 = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local",
                        "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"@{vars_file}", str(play)],
                       check=True, capture_output=True, env=env)
        return time.perf_counter() - t0

    def module(peers):
        return playbook(peers, f"wgfleet.wireguard.wg_peer: {{interface: {name}, config_dir: {config_dir}, "
                               "peers: '{{ bench_peers }}'}")

    def ansible_floor(peers):
        # What Ansible itself costs to hand the same 10,000-peer argument to a module that does nothing.
        return playbook(peers, "ansible.builtin.ping: {data: '{{ bench_peers }}'}")

    results = {}
    runners = {"raw": raw, "ours": ours}
    if args.module:
        runners["module"] = module
        runners["floor"] = ansible_floor
    for label, runner in runners.items():
        first, unchanged, one = [], [], []
        for _run in range(args.runs):
            reset()
            first.append(runner(all_peers))
            unchanged.append(runner(all_peers))
            one.append(runner(one_changed))
        results[label] = {"first apply": first, "unchanged re-run": unchanged, "one peer changed": one}
    print(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-module", dest="module", action="store_false")
    inner_arguments(parser)
    args = parser.parse_args()
    if args.inner:
        inner(args)
        return
    out = run_in_lab(__file__, "bench", ["--peers", str(args.peers), "--runs", str(args.runs),
                                         *([] if args.module else ["--no-module"])])
    results = json.loads(out.splitlines()[-1])
    print(f"{args.peers} peers, {args.runs} runs each, medians in seconds; ratio = ours / raw")
    print("ours: the core call wg_peer makes; module: wg_peer through ansible-playbook; floor: ansible-playbook")
    print("handing the same argument to ansible.builtin.ping, i.e. Ansible's own share of the module figure")
    print(f"{'scenario':<18} {'raw':>8} {'ours':>8} {'ratio':>6}"
          + (f" {'module':>8} {'ratio':>6} {'floor':>8}" if args.module else ""))
    for scenario in ("first apply", "unchanged re-run", "one peer changed"):
        raw_m = statistics.median(results["raw"][scenario])
        ours_m = statistics.median(results["ours"][scenario])
        line = f"{scenario:<18} {raw_m:8.3f} {ours_m:8.3f} {ours_m / raw_m:6.2f}"
        if args.module:
            mod_m = statistics.median(results["module"][scenario])
            floor_m = statistics.median(results["floor"][scenario])
            line += f" {mod_m:8.3f} {mod_m / raw_m:6.2f} {floor_m:8.3f}"
        print(line)


if __name__ == "__main__":
    main()
