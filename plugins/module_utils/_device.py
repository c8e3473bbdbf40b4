# Private to the wgfleet.wireguard collection: not a public API.
"""The live WireGuard device: read it with ``wg show dump``, change it with wg and wg-quick.

Bringing an interface up or down is left to wg-quick, the reference for the
order of operations (PreUp, link, ``wg setconf``, addresses, MTU, DNS,
routes, PostUp), so a file behaves the same under this collection, under
``wg-quick@.service`` and after a reboot. Peer changes never restart: they go
to the running device with ``wg set``/``wg addconf``, which leave every other
peer's session alone, and each change can be undone. Keys travel on standard
input, never on a command line.

wireguard-go, the userspace implementation, is a daemon, and two things used
to kill a freshly started one (the interface gone ~150 ms after a successful
start):

- it daemonizes without ``setsid()``, so it stays in the process group of
  whoever ran wg-quick. Under Ansible that is the task's worker, a group leader
  that ansible-playbook terminates with ``killpg()`` when it is still alive as
  the play ends. :func:`up` runs wg-quick in a session of its own.
- ``wg-quick down`` returns once the link is deleted, while the old
  wireguard-go is still shutting down; on its way out it unlinks
  ``/var/run/wireguard/NAME.sock``, whoever made the file. A new wireguard-go
  of the same name started in between loses its socket to that, notices (it
  watches the file) and exits. :func:`down` waits, bounded, for the old daemon
  to be gone.

:func:`up` then checks the interface it started: link up, ``wg`` answers, the key is the file's.
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field

from ._errors import WgCommandError, WgError
from ._wgconf import INTERFACE_SETTINGS, PEER_SETTINGS, Interface, Peer, render_peer

USERSPACE = "wireguard-go"
IMPLEMENTATIONS = ("auto", "kernel", "userspace")
SOCKET_DIR = "/var/run/wireguard"
# How long an old wireguard-go may take to exit after its link went, and a new one to answer.
DAEMON_EXIT_TIMEOUT = 10.0


# Every command the modules run (wg, wg-quick, ip) ends within this many seconds, or is stopped with
# everything it started: a hook that hangs, or bash reading a huge file line by line, cannot hold a run for ever.
COMMAND_TIMEOUT = 300.0


def run(argv, stdin: str | None = None, env: dict | None = None, check: bool = True,
        new_session: bool = False) -> subprocess.CompletedProcess:
    """Run a command, bounded by COMMAND_TIMEOUT.

    Every command runs in a session of its own, so that one out of time is stopped together with what it
    started; ``new_session`` says that the caller relies on it (wg-quick: a wireguard-go it starts must not
    stay in our process group, see the module's docstring).
    """
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
                                start_new_session=True)
    except FileNotFoundError:
        raise WgError(f"{argv[0]}: command not found; install wireguard-tools (and wireguard-go without the kernel module)") from None
    with proc:
        try:
            stdout, stderr = proc.communicate(stdin, timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=5)
            raise WgError(f"{_command(argv)} did not finish within {COMMAND_TIMEOUT:.0f} s and was stopped") from None
    result = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise WgCommandError(argv, result.returncode, stderr)
    return result


def _command(argv) -> str:
    text = " ".join(argv)
    return text if len(text) <= 200 else f"{text[:180]}... ({len(argv)} arguments)"


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def socket_path(name: str) -> str:
    return os.path.join(SOCKET_DIR, f"{name}.sock")


def kernel_has_wireguard() -> bool:
    """True when the running kernel has WireGuard built in or as a loadable module."""
    if os.path.exists("/sys/module/wireguard"):
        return True
    return run(["modprobe", "-q", "wireguard"], check=False).returncode == 0 if shutil.which("modprobe") else False


def running_implementation(name: str) -> str | None:
    """``kernel`` or ``userspace`` for a running interface, None when it is not up."""
    if not link_exists(name):
        return None
    if os.path.exists(socket_path(name)):
        return "userspace"
    return "kernel"


def read_dump(name: str) -> Interface | None:
    """The running device as a model, with the link's addresses and MTU (no other wg-quick settings);
    None when there is none."""
    found = read_dump_stats(name)
    return found[0] if found else None


def read_dump_stats(name: str) -> tuple[Interface, dict[str, PeerStats]] | None:
    """:func:`read_dump` and, from the same ``wg show dump``, each peer's handshake and transfer counters."""
    if not link_exists(name):
        return None
    proc = run(["wg", "show", name, "dump"], check=False)
    if proc.returncode != 0:
        if not link_exists(name):
            return None  # it went away while we looked
        raise WgCommandError(["wg", "show", name, "dump"], proc.returncode, proc.stderr)
    addresses, mtu = addresses_and_mtu(name)
    return parse_dump(proc.stdout).replace(address=addresses, mtu=mtu), parse_dump_stats(proc.stdout)


@dataclass(frozen=True)
class PeerStats:
    """What ``wg show dump`` counts for a peer: latest handshake (Unix time, 0 = never), bytes received and sent."""

    latest_handshake: int
    rx_bytes: int
    tx_bytes: int


def parse_dump_stats(text: str) -> dict[str, PeerStats]:
    out = {}
    for line in text.splitlines()[1:]:
        fields = line.split("\t")
        out[fields[0]] = PeerStats(int(fields[4]), int(fields[5]), int(fields[6]))
    return out


# What ``wg show dump`` writes for an unset value.
_DUMP_UNSET = frozenset(("(none)", "off"))
# The settings the dump shows, by their column (the interface's line, a peer's line): the registry's.
_DUMP_INTERFACE = tuple((name, s.dump) for name, s in INTERFACE_SETTINGS.items() if s.dump is not None)
_DUMP_PEER = tuple((name, s.dump) for name, s in PEER_SETTINGS.items() if s.dump is not None)


def _dump_values(line: str, columns: tuple) -> dict:
    fields = line.split("\t")
    return {name: None if fields[col] in _DUMP_UNSET else fields[col] for name, col in columns}


def parse_dump(text: str) -> Interface:
    lines = text.splitlines()
    peers = tuple(Peer(**_dump_values(line, _DUMP_PEER)) for line in lines[1:])
    return Interface(**_dump_values(lines[0], _DUMP_INTERFACE), peers=peers)


# wg-quick falls back to this when `ip link add ... type wireguard` fails.
QUICK_ENV = {"WG_QUICK_USERSPACE_IMPLEMENTATION": USERSPACE, "WG_ENDPOINT_RESOLUTION_RETRIES": "3"}


def check_implementation(implementation: str) -> str:
    """The implementation wg-quick will use; fail early when it cannot be had."""
    kernel = kernel_has_wireguard()
    userspace = shutil.which(USERSPACE) is not None
    if implementation == "kernel" and not kernel:
        raise WgError("implementation: 'kernel' was asked for, but this kernel has no WireGuard module")
    if implementation == "userspace":
        if kernel:
            raise WgError(
                "implementation: 'userspace' was asked for, but this kernel has the WireGuard module "
                "and wg-quick always prefers it; use 'auto' or 'kernel'"
            )
        if not userspace:
            raise WgError(f"implementation: 'userspace' needs {USERSPACE}, which is not installed")
    if implementation == "auto" and not kernel and not userspace:
        raise WgError(f"implementation: this kernel has no WireGuard module and {USERSPACE} is not installed")
    return "kernel" if kernel else "userspace"


def up(path: str, implementation: str = "auto", public_key: str | None = None) -> None:
    """``wg-quick up``, then a check that the interface runs: link up, ``wg`` answers, the key is ``public_key``."""
    name = os.path.basename(path)[:-len(".conf")]
    check_implementation(implementation)
    try:
        # wireguard-go daemonizes without setsid(): left in our process group, it would die with it. Ansible's
        # worker for this task is a group leader, and a worker still alive when the play ends is terminated
        # with killpg(); seen as a link gone ~150 ms after a successful start.
        run(["wg-quick", "up", path], env=QUICK_ENV, new_session=True)
    except WgError:
        # wg-quick deletes the link it made when a later step fails; let its daemon go too.
        _wait_daemon_gone(name, _daemon_pids(name))
        raise
    verify_up(name, public_key)


def verify_up(name: str, public_key: str | None = None) -> None:
    problem = _up_problem(name, public_key)
    if problem:
        raise WgError(f"{name}: wg-quick up succeeded, but {problem}")


def _up_problem(name: str, public_key: str | None) -> str | None:
    proc = run(["ip", "-j", "link", "show", "dev", name], check=False)
    try:
        flags = json.loads(proc.stdout or "[]")[0].get("flags", [])
    except (ValueError, IndexError):
        return "the link is gone"
    if "UP" not in flags:
        return "the link is not up"
    shown = run(["wg", "show", name, "public-key"], check=False)
    if shown.returncode != 0:
        return f"'wg show {name}' does not answer ({shown.stderr.strip() or 'no output'})"
    if public_key and shown.stdout.strip() != public_key:
        return f"the device's public key is {shown.stdout.strip()}, not the file's {public_key}"
    return None


def down(path: str, name: str) -> None:
    """``wg-quick down`` with the file as it is now (so its PreDown/PostDown hooks run), then wait,
    bounded, until the interface's wireguard-go has exited and its socket is gone."""
    pids = _daemon_pids(name)
    if os.path.exists(path):
        run(["wg-quick", "down", path], env=QUICK_ENV, new_session=True)
    elif link_exists(name):
        run(["ip", "link", "delete", "dev", name])
    _wait_daemon_gone(name, pids)


def _wait_daemon_gone(name: str, pids: list[int]) -> None:
    deadline = time.monotonic() + DAEMON_EXIT_TIMEOUT
    for pid in pids:
        while _alive(pid):
            if time.monotonic() > deadline:
                raise WgError(f"{name}: {USERSPACE} (pid {pid}) did not exit within {DAEMON_EXIT_TIMEOUT:.0f} s "
                              "after its link was deleted")
            time.sleep(0.02)
    sock = socket_path(name)
    # A socket nobody listens on is left by a daemon that was killed; a stale one would confuse
    # running_implementation(). One that answers belongs to a live daemon elsewhere: leave it.
    if os.path.exists(sock) and not link_exists(name) and not _listening(sock):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sock)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _listening(sock: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1)
    try:
        probe.connect(sock)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _daemon_pids(name: str) -> list[int]:
    """The processes with a socket bound to NAME's userspace socket path in this network namespace.

    A daemon unlinks the path before it closes the socket, so one that is no
    longer listed here can no longer take a new daemon's socket away.
    """
    wanted = {socket_path(name), os.path.join("/run/wireguard", f"{name}.sock")}
    try:
        with open("/proc/net/unix", encoding="utf-8", errors="replace") as handle:
            targets = {f"socket:[{parts[6]}]" for parts in (line.split() for line in handle)
                       if len(parts) >= 8 and parts[7] in wanted}
    except OSError:
        return []
    if not targets:
        return []
    found = []
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    # The daemon is wireguard-go almost always: look at those first, then at every process.
    first = [p for p in pids if _comm(p) == USERSPACE]
    for pid in first + [p for p in pids if p not in first]:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                        found.append(int(pid))
                        break
        if len(found) == len(targets):
            break
    return found


def _comm(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def set_interface(name: str, private_key: str | None, listen_port: int | None, fwmark: int | None) -> None:
    """Bring the device's own settings in line, live."""
    text = "[Interface]\n"
    if private_key:
        text += f"PrivateKey = {private_key}\n"
    if listen_port:
        text += f"ListenPort = {listen_port}\n"
    text += f"FwMark = {fwmark or 'off'}\n"
    run(["wg", "addconf", name, "/dev/stdin"], stdin=text)


@dataclass
class LiveChange:
    """What :func:`apply_peers` did to a device, enough to take it back (:func:`undo`)."""

    name: str
    before: dict  # public key -> the peer as it was (absent: the peer was new)
    touched: list = field(default_factory=list)  # public keys changed, in order
    routes_added: list = field(default_factory=list)  # ``ip route`` arguments after "replace"/"del"
    routes_removed: list = field(default_factory=list)


def apply_peers(name: str, upsert: list[Peer], remove: list[str], live: dict[str, Peer]) -> None:
    """Add or update ``upsert`` and remove the keys in ``remove`` on the running device (peers only).

    ``live`` is the device's current peers: ``wg addconf`` cannot take a preshared
    key away, so that is done with ``wg set``. An endpoint is never cleared live:
    WireGuard learns it from traffic, and only removing the peer would forget it.
    """
    args = []
    for key in remove:
        args += ["peer", key, "remove"]
    for peer in upsert:
        old = live.get(peer.public_key)
        if old is not None and old.preshared_key and not peer.preshared_key:
            args += ["peer", peer.public_key, "preshared-key", "/dev/null"]
    if args:
        run(["wg", "set", name, *args])
    if upsert:
        _addconf(name, upsert)


def change_peers(name: str, iface: Interface, upsert: list[Peer], remove: list[str], live: Interface,
                 change: LiveChange | None = None) -> LiveChange:
    """:func:`apply_peers` with the routes, recorded step by step in ``change`` so that :func:`undo`
    can take back a change that failed half-way.

    ``iface`` is the whole desired interface: its Table and its peers decide the
    routes. A removed peer's networks, and networks an updated peer no longer
    has, lose their routes at once (unless another peer still has them).
    """
    live_map = live.peer_map()
    change = change or LiveChange(name, before={})
    remove = [k for k in remove if k in live_map]
    for key in [*remove, *(p.public_key for p in upsert)]:
        if key in live_map:
            change.before.setdefault(key, live_map[key])
    change.touched += remove + [p.public_key for p in upsert]
    gone = {c for k in remove for c in live_map[k].allowed_ips}
    for peer in upsert:
        old = live_map.get(peer.public_key)
        if old is not None:
            gone |= set(old.allowed_ips) - set(peer.allowed_ips)
    gone -= {c for p in iface.peers for c in p.allowed_ips}
    # Routes that go, then the peers, then the new routes: a run killed between two steps leaves either a
    # peer still on the device (the next run removes it) or a peer without its route (the next run adds it,
    # see live_drift), never a route that nothing would take away.
    change.routes_removed += remove_routes(name, iface, gone)
    apply_peers(name, upsert, remove, live_map)
    change.routes_added += add_routes(name, iface, upsert)
    return change


def undo(change: LiveChange) -> None:
    """Put the device back as it was before ``change``, as far as it can be; errors are swallowed
    (the caller is already reporting the one that made it undo)."""
    for route in change.routes_added:
        run(["ip", "route", "del", *route], check=False)
    for route in change.routes_removed:
        run(["ip", "route", "replace", *route], check=False)
    new = [k for k in dict.fromkeys(change.touched) if k not in change.before]
    if new:
        run(["wg", "set", change.name, *[a for k in new for a in ("peer", k, "remove")]], check=False)
    old = list(change.before.values())
    if old:
        with contextlib.suppress(WgError):
            # The old peers exactly: remove and re-add, so that allowed IPs and preshared keys come back too.
            run(["wg", "set", change.name, *[a for p in old for a in ("peer", p.public_key, "remove")]], check=False)
            _addconf(change.name, old)


def _addconf(name: str, peers: list[Peer]) -> None:
    lines = ["[Interface]"]
    for peer in peers:
        lines.extend(render_peer(peer, wg_only=True, explicit=True))
    # A host name that does not resolve fails quickly instead of after wg's 15 default retries.
    run(["wg", "addconf", name, "/dev/stdin"], stdin="\n".join(lines) + "\n",
        env={"WG_ENDPOINT_RESOLUTION_RETRIES": QUICK_ENV["WG_ENDPOINT_RESOLUTION_RETRIES"]})


def _routes(name: str, select: list[str]) -> list[tuple]:
    """(network, protocol) of the routes through ``name`` in the table chosen by ``select``."""
    out = []
    for family in ("-4", "-6"):
        proc = run(["ip", family, "-j", "route", "show", "dev", name, *select], check=False)
        with contextlib.suppress(ValueError):
            for route in json.loads(proc.stdout or "[]"):
                if route.get("dst", "default") != "default":
                    with contextlib.suppress(ValueError):
                        out.append((ipaddress.ip_network(route["dst"], strict=False), route.get("protocol", "boot")))
    return out


def _table(iface: Interface) -> list[str] | None:
    table = iface.table or "auto"
    if table == "off":
        return None
    return [] if table == "auto" else ["table", table]


def routed_ips(peer: Peer) -> list[str]:
    """The allowed IPs of ``peer`` that wg-quick gives a route of their own (a default route is its policy
    routing's business at start)."""
    return [cidr for cidr in peer.allowed_ips if not cidr.endswith("/0")]


class Routes:
    """The networks routed through one interface in the table its file names, as :func:`read_routes` read
    them; :meth:`covers` answers whether a network is reached through them (it or a larger one is routed)."""

    def __init__(self, networks):
        self._by_length: dict = {}  # (IP version, prefix length) -> network addresses as integers
        for net in networks:
            self._by_length.setdefault((net.version, net.prefixlen), set()).add(int(net.network_address))

    def covers(self, cidr: str) -> bool:
        net = ipaddress.ip_network(cidr, strict=False)
        bits, address = net.max_prefixlen, int(net.network_address)
        for (version, length), addresses in self._by_length.items():
            shift = bits - length
            if version == net.version and length <= net.prefixlen and (address >> shift << shift) in addresses:
                return True
        return False


def read_routes(name: str, iface: Interface) -> Routes | None:
    """The routes through ``name`` in the table of ``iface`` (its Table: auto is the main table, a number or a
    name that table); None with Table = off, where wg-quick adds none."""
    select = _table(iface)
    if select is None:
        return None
    return Routes(net for net, _proto in _routes(name, select))


def add_routes(name: str, iface: Interface, peers: list[Peer]) -> list[list[str]]:
    """Routes for new AllowedIPs, as wg-quick adds them at start (Table auto or a table of its own).

    Like wg-quick, a network already routed to the interface (say, inside its own
    subnet) gets no route of its own. The routes are read once and added in one
    ``ip -batch`` call: a server may get thousands of peers at once. Returns the
    routes added.
    """
    wanted = {cidr for peer in peers for cidr in routed_ips(peer)}
    routed = read_routes(name, iface) if wanted else None
    if routed is None:
        return []
    added = [[cidr, "dev", name, *_table(iface)] for cidr in sorted(wanted) if not routed.covers(cidr)]
    if added:
        try:
            run(["ip", "-batch", "-"], stdin="".join(" ".join(["route", "replace", *r]) + "\n" for r in added))
        except WgError:
            # ip stops at the first failure: take back the ones before it.
            run(["ip", "-force", "-batch", "-"], stdin="".join(" ".join(["route", "del", *r]) + "\n" for r in added),
                check=False)
            raise
    return added


def remove_routes(name: str, iface: Interface, cidrs: set) -> list[list[str]]:
    """Take away the routes wg-quick (or :func:`add_routes`) made for networks no peer has any more.

    Only a route to exactly such a network through this interface goes; the
    kernel's own route to the interface's subnet never does. Returns the routes removed.
    """
    select = _table(iface)
    wanted = {ipaddress.ip_network(c) for c in cidrs if not c.endswith("/0")}
    if select is None or not wanted:
        return []
    removed = [[str(net), "dev", name, *select] for net, proto in _routes(name, select)
               if net in wanted and proto != "kernel"]
    if removed:
        run(["ip", "-batch", "-"], stdin="".join(" ".join(["route", "del", *r]) + "\n" for r in removed))
    return removed


def addresses_and_mtu(name: str) -> tuple[tuple, int | None]:
    """The addresses (in kernel order) and MTU of a running link."""
    proc = run(["ip", "-j", "address", "show", "dev", name], check=False)
    try:
        info = json.loads(proc.stdout or "[]")[0]
    except (ValueError, IndexError):
        return (), None
    addrs = tuple(f"{a['local']}/{a['prefixlen']}" for a in info.get("addr_info", []) if a.get("scope") != "link")
    return addrs, info.get("mtu")
