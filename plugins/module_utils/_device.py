# Private to the wgfleet.wireguard collection: not a public API.
"""The live WireGuard device: read it with ``wg show dump``, change it with wg and wg-quick.

Bringing an interface up or down is left to wg-quick, the reference for the
order of operations (PreUp, link, ``wg setconf``, addresses, MTU, DNS,
routes, PostUp), so a file behaves the same under this collection, under
``wg-quick@.service`` and after a reboot. Peer changes never restart: they go
to the running device with ``wg set``/``wg addconf``, which leave every other
peer's session alone. Keys travel on standard input, never on a command line.
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess

from ._errors import WgCommandError, WgError
from ._wgconf import Interface, Peer, render_peer

USERSPACE = "wireguard-go"
IMPLEMENTATIONS = ("auto", "kernel", "userspace")


def run(argv, stdin: str | None = None, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=full_env, check=False)
    except FileNotFoundError:
        raise WgError(f"{argv[0]}: command not found; install wireguard-tools (and wireguard-go without the kernel module)") from None
    if check and proc.returncode != 0:
        raise WgCommandError(argv, proc.returncode, proc.stderr)
    return proc


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def kernel_has_wireguard() -> bool:
    """True when the running kernel has WireGuard built in or as a loadable module."""
    if os.path.exists("/sys/module/wireguard"):
        return True
    return run(["modprobe", "-q", "wireguard"], check=False).returncode == 0 if shutil.which("modprobe") else False


def running_implementation(name: str) -> str | None:
    """``kernel`` or ``userspace`` for a running interface, None when it is not up."""
    if not link_exists(name):
        return None
    if os.path.exists(f"/var/run/wireguard/{name}.sock"):
        return "userspace"
    return "kernel"


def read_dump(name: str) -> Interface | None:
    """The running device as a model (no wg-quick settings), or None when there is none."""
    if not link_exists(name):
        return None
    proc = run(["wg", "show", name, "dump"], check=False)
    if proc.returncode != 0:
        if not link_exists(name):
            return None  # it went away while we looked
        raise WgCommandError(["wg", "show", name, "dump"], proc.returncode, proc.stderr)
    return parse_dump(proc.stdout)


def parse_dump(text: str) -> Interface:
    lines = text.splitlines()
    private_key, _public, port, fwmark = lines[0].split("\t")[:4]
    peers = []
    for line in lines[1:]:
        pub, psk, endpoint, allowed, _hs, _rx, _tx, keepalive = line.split("\t")[:8]
        peers.append(
            Peer(
                public_key=pub,
                preshared_key=None if psk == "(none)" else psk,
                endpoint=None if endpoint == "(none)" else endpoint,
                allowed_ips=() if allowed == "(none)" else allowed.split(","),
                persistent_keepalive=0 if keepalive == "off" else int(keepalive),
            )
        )
    return Interface(
        private_key=None if private_key == "(none)" else private_key,
        listen_port=int(port) or None,
        fwmark=None if fwmark == "off" else int(fwmark, 0),
        peers=tuple(peers),
    )


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


def up(path: str, implementation: str = "auto") -> None:
    check_implementation(implementation)
    run(["wg-quick", "up", path], env=QUICK_ENV)


def down(path: str, name: str) -> None:
    """``wg-quick down`` with the file as it is now, so its PreDown/PostDown hooks run."""
    sock = f"/var/run/wireguard/{name}.sock"
    if os.path.exists(path):
        run(["wg-quick", "down", path], env=QUICK_ENV)
    elif link_exists(name):
        run(["ip", "link", "delete", "dev", name])
    # wireguard-go removes its socket when the link goes; a stale one would confuse running_implementation().
    if os.path.exists(sock) and not link_exists(name):
        os.unlink(sock)


def set_interface(name: str, private_key: str | None, listen_port: int | None, fwmark: int | None) -> None:
    """Bring the device's own settings in line, live."""
    text = "[Interface]\n"
    if private_key:
        text += f"PrivateKey = {private_key}\n"
    if listen_port:
        text += f"ListenPort = {listen_port}\n"
    text += f"FwMark = {fwmark or 'off'}\n"
    run(["wg", "addconf", name, "/dev/stdin"], stdin=text)


def apply_peers(name: str, upsert: list[Peer], remove: list[str], live: dict[str, Peer]) -> None:
    """Add or update ``upsert`` and remove the keys in ``remove`` on the running device.

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
        lines = ["[Interface]"]
        for peer in upsert:
            lines.extend(render_peer(peer, wg_only=True, explicit=True))
        run(["wg", "addconf", name, "/dev/stdin"], stdin="\n".join(lines) + "\n")


def add_routes(name: str, iface: Interface, peers: list[Peer]) -> None:
    """Routes for new AllowedIPs, as wg-quick adds them at start (Table auto or a table of its own).

    Like wg-quick, a network already routed to the interface (say, inside its own
    subnet) gets no route of its own. The routes are read once and added in one
    ``ip -batch`` call: a server may get thousands of peers at once.
    """
    table = iface.table or "auto"
    if table == "off":
        return
    wanted = {cidr for peer in peers for cidr in peer.allowed_ips if not cidr.endswith("/0")}
    if not wanted:
        return  # default routes are wg-quick's business at start (policy routing)
    select = [] if table == "auto" else ["table", table]
    routed = []
    for family in ("-4", "-6"):
        proc = run(["ip", family, "-j", "route", "show", "dev", name, *select], check=False)
        with contextlib.suppress(ValueError):
            routed += [ipaddress.ip_network(r["dst"]) for r in json.loads(proc.stdout or "[]")
                       if r.get("dst", "default") != "default"]
    batch = []
    for cidr in sorted(wanted):
        net = ipaddress.ip_network(cidr)
        if not any(net.version == r.version and net.subnet_of(r) for r in routed):
            batch.append(" ".join(["route", "replace", cidr, "dev", name, *select]))
    if batch:
        run(["ip", "-batch", "-"], stdin="\n".join(batch) + "\n")


def addresses_and_mtu(name: str) -> tuple[tuple, int | None]:
    """The addresses (in kernel order) and MTU of a running link."""
    proc = run(["ip", "-j", "address", "show", "dev", name], check=False)
    try:
        info = json.loads(proc.stdout or "[]")[0]
    except (ValueError, IndexError):
        return (), None
    addrs = tuple(f"{a['local']}/{a['prefixlen']}" for a in info.get("addr_info", []) if a.get("scope") != "link")
    return addrs, info.get("mtu")
