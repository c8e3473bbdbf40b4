"""Network namespaces as test hosts, joined by veth pairs.

Every namespace, veth and wireguard-go daemon a test makes is removed by
``Lab.close()``; subnets come from 172.30.0.0/16, far from the machine's uplink.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

_counter = itertools.count(1)


def sh(*argv, check=True, input=None, netns=None):
    if netns:
        argv = ("ip", "netns", "exec", netns, *argv)
    proc = subprocess.run(argv, capture_output=True, text=True, input=input, check=False)
    if check and proc.returncode:
        raise AssertionError(f"{' '.join(argv)} -> rc {proc.returncode}: {proc.stderr.strip()}")
    return proc


class Lab:
    """A set of namespaces; ``link(a, b)`` joins two with a veth pair on 172.30.N.0/24."""

    def __init__(self):
        self.tag = uuid.uuid4().hex[:5]
        self.namespaces: list[str] = []
        self.wg_names: list[str] = []

    def host(self, role: str) -> str:
        name = f"wgt-{self.tag}-{role}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "link", "set", "lo", "up", netns=name)
        return name

    def link(self, a: str, b: str) -> tuple[str, str]:
        """Join ``a`` and ``b``; returns their addresses (without prefix)."""
        n = next(_counter) % 250 + 1
        subnet = (os.getpid() % 200) + 20
        va, vb = f"v{self.tag}{n}a", f"v{self.tag}{n}b"
        sh("ip", "link", "add", va, "netns", a, "type", "veth", "peer", "name", vb, "netns", b)
        ip_a, ip_b = f"172.30.{subnet}.{2 * n}", f"172.30.{subnet}.{2 * n + 1}"
        for ns, dev, ip in ((a, va, ip_a), (b, vb, ip_b)):
            sh("ip", "address", "add", f"{ip}/31", "dev", dev, netns=ns)
            sh("ip", "link", "set", dev, "up", netns=ns)
        return ip_a, ip_b

    def wg_name(self, role: str) -> str:
        """A WireGuard interface name unique on the machine (wireguard-go's sockets are not per namespace)."""
        name = f"wg{self.tag}{role}"[:15]
        self.wg_names.append(name)
        return name

    def close(self):
        for ns in self.namespaces:
            pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGTERM)
            deadline = time.monotonic() + 5
            while pids and time.monotonic() < deadline:
                pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
                time.sleep(0.05)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            sh("ip", "netns", "del", ns, check=False)
        for name in self.wg_names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"/var/run/wireguard/{name}.sock")


def ping(netns: str, address: str, count: int = 3, deadline: int = 5) -> bool:
    """A bounded ping: done after ``count`` replies or ``deadline`` seconds, whichever comes first."""
    return sh("ping", "-c", str(count), "-i", "0.2", "-w", str(deadline), address, netns=netns,
              check=False).returncode == 0


def wg_dump(netns: str, name: str) -> list[list[str]]:
    return [line.split("\t") for line in sh("wg", "show", name, "dump", netns=netns).stdout.splitlines()]


def inner_arguments(parser) -> None:
    """The hidden options by which :func:`run_in_lab` runs a script again inside its namespace."""
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--config-dir", help=argparse.SUPPRESS)


def run_in_lab(script: str, role: str, args: list[str], private_run: bool = False) -> str:
    """Run ``python SCRIPT --inner --name NAME --config-dir DIR *ARGS`` in a namespace of its own (and, with
    ``private_run``, a private /run/wireguard); returns its output. Namespace, daemons and DIR go afterwards."""
    lab = Lab()
    try:
        ns = lab.host(role)
        name = lab.wg_name(role[0])
        with tempfile.TemporaryDirectory() as tmp:
            argv = [sys.executable, script, "--inner", "--name", name, "--config-dir", tmp, *args]
            if private_run:
                argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        'mount -t tmpfs tmpfs /run/wireguard && exec "$0" "$@"', *argv]
            return sh(*argv, netns=ns).stdout
    finally:
        lab.close()
