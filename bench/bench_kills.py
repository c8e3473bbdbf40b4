"""Harness: SIGKILL at a random moment of wg_peer, wg_interface and wg_restore runs, then a plain re-run.

A wireguard-go interface in a network namespace of its own goes through a
cycle of changes: wg_peer swaps a set of peers for another (``exclusive``,
live, with routes), wg_interface changes the MTU (a restart) and wg_restore
puts a whole state back (peers live, or a restart when the MTU differs). Each
run is the core call the module makes (wg_restore's from the plan on: the
state a snapshot would give, without the database), in a process of its own
that is SIGKILLed at a moment drawn uniformly from 0 to 1.2 times the run's
own clean duration (so some finish before the kill). The same run is then
started again, unkilled, once the killed run's commands (wg-quick, ip) have
ended, and the host is checked by other means than the collection:

- the file: its peers' keys and its MTU (a tiny parser here), mode 0600, and
  no temporary file or other file readable by others left in the directory;
- the device: ``wg show dump``'s peer keys, the link up with the file's MTU;
- the routes: ``ip route show dev`` equals every peer's network plus the
  interface's subnet, what a clean apply gives;
- a third run changes nothing.

A run "converged" when all of that holds after the re-run. Prints one line
per kill and the totals.

Run as root: ``python bench/bench_kills.py [--kills N] [--peers N] [--seed N]``
(at least 50 kills; 60 take about 4.5 minutes on the 2-core machine). Namespace,
daemon and directory are removed afterwards.
"""
from __future__ import annotations

import argparse
import json
import random
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers.netns import Lab, sh  # noqa: E402
from tests.helpers.playbook import ensure_collection_path  # noqa: E402

COLLECTIONS = ensure_collection_path()
sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys  # noqa: E402

SUBNET = "10.79.0.0/24"
RUN_TIMEOUT = 120  # seconds for one unkilled run: the harness is bounded in time

# One run of the core, as its module makes it; argv: collections path, then a JSON job.
RUNNER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.wgfleet.wireguard.plugins.module_utils import _backup, _wgconf
from ansible_collections.wgfleet.wireguard.plugins.module_utils._interface import InterfaceRequest, ensure
from ansible_collections.wgfleet.wireguard.plugins.module_utils._peers import FileBackend, PeerSpec
job = json.loads(sys.argv[2])
if job["op"] == "wg_peer":
    specs = [PeerSpec(public_key=k, allowed_ips=[n]) for k, n in job["peers"]]
    result = FileBackend(job["name"], job["dir"]).apply(specs, True, False)
    changed = result["changed"]
elif job["op"] == "wg_interface":
    changed = ensure(InterfaceRequest(name=job["name"], config_dir=job["dir"], settings={"mtu": job["mtu"]}),
                     False)["changed"]
else:
    state = {job["name"]: _wgconf.Interface(
        private_key=job["key"], listen_port=job["port"], address=(job["address"],), mtu=job["mtu"],
        peers=tuple(_wgconf.Peer(public_key=k, allowed_ips=(n,)) for k, n in job["peers"]))}
    plans = _backup.plan_restore(state, _backup.observe(job["dir"], state), True, False)
    _backup.apply_restore(plans)
    changed = any(p.changed for p in plans)
print(json.dumps({"changed": changed}))
"""


def peer_set(base: int, count: int) -> list[list[str]]:
    return [[_keys.public_key(_keys.generate_private_key()), f"10.{90 + (base + i) // 250}.{(base + i) % 250}.0/24"]
            for i in range(count)]


def start(ns: str, job: dict) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", RUNNER, str(COLLECTIONS),
                             json.dumps(job)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=RUN_TIMEOUT)
    return proc.returncode, out, err


def leftovers(ns: str) -> list[str]:
    """Processes in the namespace other than wireguard-go daemons (a killed run's wg-quick, ip, wg)."""
    out = []
    for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm != "wireguard-go":
            out.append(f"{pid}:{comm}")
    return out


def wait_quiet(ns: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while leftovers(ns) and time.monotonic() < deadline:
        time.sleep(0.05)


def file_state(path: Path) -> tuple[set, str | None]:
    """The peers' keys and the MTU of a wg-quick file, by a parser of its own."""
    keys, mtu = set(), None
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "PublicKey":
            keys.add(value.strip())
        elif key.strip() == "MTU":
            mtu = value.strip()
    return keys, mtu


def problems(ns: str, name: str, directory: Path, want: dict) -> list[str]:
    found = []
    conf = directory / f"{name}.conf"
    keys, mtu = file_state(conf)
    wanted_keys = {k for k, _n in want["peers"]}
    if keys != wanted_keys:
        found.append(f"file peers {len(keys)} (want {len(wanted_keys)})")
    if mtu != str(want["mtu"]):
        found.append(f"file MTU {mtu}")
    for entry in directory.iterdir():
        mode = stat.S_IMODE(entry.lstat().st_mode)
        if entry.name.startswith(".") and not entry.name.endswith(".lock"):
            found.append(f"stray {entry.name}")
        if entry.is_file() and mode & 0o077:
            found.append(f"{entry.name} mode {oct(mode)}")
    link = sh("ip", "-j", "link", "show", "dev", name, netns=ns, check=False)
    if link.returncode != 0:
        return [*found, "interface down"]
    info = json.loads(link.stdout)[0]
    if info.get("mtu") != want["mtu"] or "UP" not in info.get("flags", []):
        found.append(f"link MTU {info.get('mtu')} flags {info.get('flags')}")
    dump = sh("wg", "show", name, "dump", netns=ns).stdout.splitlines()[1:]
    live = {line.split("\t")[0] for line in dump}
    if live != wanted_keys:
        found.append(f"device peers {len(live)} (want {len(wanted_keys)})")
    routes = {line.split()[0] for line in sh("ip", "route", "show", "dev", name, netns=ns).stdout.splitlines()}
    wanted_routes = {SUBNET, *(n for _k, n in want["peers"])}
    if routes != wanted_routes:
        found.append(f"routes {len(routes)} (want {len(wanted_routes)}, missing {len(wanted_routes - routes)})")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--peers", type=int, default=100)
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    if args.kills < 50:
        parser.error("--kills: at least 50")
    rng = random.Random(args.seed)
    lab = Lab()
    totals = {"kills": 0, "died": 0, "converged": 0, "failed_rerun": 0}
    started = time.monotonic()
    try:
        ns = lab.host("kill")
        name = lab.wg_name("k")
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp) / "etc"
            key = _keys.generate_private_key()
            sets = [peer_set(0, args.peers), peer_set(args.peers, args.peers)]
            state = {"mtu": 1420, "peers": sets[0]}
            base = {"name": name, "dir": str(directory)}
            restore = {**base, "op": "wg_restore", "key": key, "port": 51895, "address": "10.79.0.1/24"}
            rc, _out, err = finish(start(ns, {**restore, **state}))
            if rc != 0:
                print(err, file=sys.stderr)
                return 2
            durations: dict = {}
            cycle = ["wg_peer", "wg_interface", "wg_restore"]
            for i in range(args.kills):
                op = cycle[i % 3]
                if op == "wg_peer":
                    target = {**state, "peers": sets[1] if state["peers"] is sets[0] else sets[0]}
                    job = {**base, "op": op, "peers": target["peers"]}
                elif op == "wg_interface":
                    target = {**state, "mtu": 1380 if state["mtu"] == 1420 else 1420}
                    job = {**base, "op": op, "mtu": target["mtu"]}
                else:
                    # Every other restore also changes the MTU: a restart; the others go live.
                    flip = (i // 3) % 2 == 1
                    target = {"mtu": (1380 if state["mtu"] == 1420 else 1420) if flip else state["mtu"],
                              "peers": sets[1] if state["peers"] is sets[0] else sets[0]}
                    job = {**restore, **target}
                clean = durations.get(op, 1.0)
                delay = rng.uniform(0, 1.2 * clean)
                proc = start(ns, job)
                time.sleep(delay)
                died = proc.poll() is None
                if died:
                    proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=RUN_TIMEOUT)
                totals["kills"] += 1
                totals["died"] += died
                wait_quiet(ns)
                t1 = time.monotonic()
                rc, _out, err = finish(start(ns, job))
                if rc == 0:
                    durations[op] = time.monotonic() - t1
                again_rc, again_out, _ = finish(start(ns, job))
                found = [] if rc == 0 else [f"re-run failed: {err.strip().splitlines()[-1:]}"]
                found += problems(ns, name, directory, target)
                if again_rc != 0 or json.loads(again_out or "{}").get("changed") is not False:
                    found.append("third run not unchanged")
                totals["failed_rerun"] += rc != 0
                totals["converged"] += not found
                print(f"{i + 1:3d} {op:12s} killed at {delay:5.2f} s ({'during the run' if died else 'after it ended'},"
                      f" clean run {clean:4.2f} s): {'converged' if not found else '; '.join(found)}", flush=True)
                state = target
    finally:
        lab.close()
    print(f"\n{totals['converged']} of {totals['kills']} killed runs converged on the next run "
          f"({totals['died']} killed while running, {totals['kills'] - totals['died']} had already ended; "
          f"{totals['failed_rerun']} re-runs failed); {time.monotonic() - started:.0f} s in all")
    return 0 if totals["converged"] == totals["kills"] else 1


if __name__ == "__main__":
    sys.exit(main())
