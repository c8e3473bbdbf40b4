"""Reproduce the restart race: does an interface that wg_interface reports as restarted stay up?

Each round changes ``post_up`` (a start-only setting, so the interface restarts),
runs wg_interface, waits ``--settle`` seconds and looks at the interface with
independent tools: the link in /sys, ``wg show`` answering. A round counts as
"died" when the module reported ``applied: restart`` and the interface was gone
by then, as "failed" when the module itself failed.

Modes: ``ansible`` runs the module through ansible-playbook (as users do; the
Ansible worker's process group is involved), ``core`` calls the core directly
(only the wireguard-go shutdown race is involved).

Run as root: ``python bench/restart_race.py [--runs 125] [--mode ansible|core]
[--collections PATH]``; PATH is an ``ansible_collections`` parent directory, to
measure another checkout of the collection (the default is this one). It runs
in a network namespace with a private /run/wireguard (a mount namespace of its
own), removed at the end. Not a test: it takes minutes and its figures are counts.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers.netns import inner_arguments, run_in_lab  # noqa: E402
from tests.helpers.playbook import ensure_collection_path  # noqa: E402


def alive(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}") and subprocess.run(
        ["wg", "show", name], capture_output=True, check=False).returncode == 0


def inner(args) -> None:
    """Runs inside the namespace, with /run/wireguard private; prints the counts as JSON."""
    sys.path.insert(0, args.collections)
    name, config_dir = args.name, args.config_dir
    counts = {"rounds": 0, "restarted": 0, "died": 0, "failed": 0, "errors": []}

    def by_core(post_up):
        from ansible_collections.wgfleet.wireguard.plugins.module_utils._interface import InterfaceRequest, ensure

        try:
            return ensure(InterfaceRequest(name=name, config_dir=config_dir, settings={
                "address": ["10.10.0.1/24"], "listen_port": 51820, "post_up": post_up}), False)
        except Exception as exc:  # a failed round is counted, not fatal
            return {"failed": True, "msg": str(exc)}

    def by_ansible(post_up):
        # wg_interface is the play's last task, as in a playbook that ends by (re)starting an interface.
        play = Path(config_dir) / "play.yml"
        task = {"name": "r", "wgfleet.wireguard.wg_interface": {
            "name": name, "config_dir": config_dir, "address": ["10.10.0.1/24"], "listen_port": 51820,
            "post_up": post_up}}
        play.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=args.collections, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
        proc = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c",
                               "local", "-e", f"ansible_python_interpreter={sys.executable}", str(play)],
                              capture_output=True, text=True, env=env, check=False, timeout=300)
        try:
            data = json.loads(proc.stdout[proc.stdout.index("{"):])
            return next(iter(data["plays"][0]["tasks"][0]["hosts"].values()))
        except (ValueError, KeyError, IndexError, StopIteration):
            return {"failed": True, "msg": "no result: " + proc.stderr[-150:]}

    apply = by_ansible if args.mode == "ansible" else by_core
    apply(["true"])
    for i in range(args.runs):
        counts["rounds"] += 1
        result = apply([f"true {i}"])
        time.sleep(args.settle)
        if result.get("failed"):
            counts["failed"] += 1
            counts["errors"].append(result.get("msg", "")[:200])
        elif result.get("applied") == "restart":
            counts["restarted"] += 1
            if not alive(name):
                counts["died"] += 1
                apply(["true again"])  # start it for the next round
    print(json.dumps(counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=125)
    parser.add_argument("--mode", choices=["ansible", "core"], default="ansible")
    parser.add_argument("--settle", type=float, default=0.5, help="seconds between a round and the check")
    parser.add_argument("--collections", default=str(ensure_collection_path()))
    inner_arguments(parser)
    args = parser.parse_args()
    if args.inner:
        inner(args)
        return
    t0 = time.monotonic()
    out = run_in_lab(__file__, "race", ["--runs", str(args.runs), "--mode", args.mode, "--settle", str(args.settle),
                                        "--collections", args.collections], private_run=True)
    took = time.monotonic() - t0
    counts = json.loads(out.splitlines()[-1])
    print(f"mode {args.mode}, collection {args.collections}, {took:.0f} s")
    print(f"rounds {counts['rounds']}, reported restart {counts['restarted']}, died after a reported restart "
          f"{counts['died']}, module failed {counts['failed']}")
    for error in sorted(set(counts["errors"]))[:5]:
        print("  failure:", error)


if __name__ == "__main__":
    main()
