"""A "server host" for tests: a lab namespace running wg-quick interfaces (and, in wgrest_real, the real wgrest).

The namespace is joined to the test process's own namespace by a veth pair on
172.31.N.0/30, so the client under test reaches the API at ``api_url`` exactly
as it would reach a real wgrest over the network. ``Lab.close()`` kills every
process in the namespace and deleting it removes the veth pair.
"""
from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.helpers.netns import sh

REPO = Path(__file__).resolve().parents[2]
API_PORT = 51822
_counter = itertools.count(1)
QUICK_ENV = {"WG_QUICK_USERSPACE_IMPLEMENTATION": "wireguard-go"}


class ServerHost:
    """One simulated WireGuard server: a namespace, its wg-quick interfaces and (optionally) the wgrest double."""

    def __init__(self, lab, role: str = "srv"):
        self.lab = lab
        self.ns = lab.host(role)
        n = next(_counter) % 60
        subnet = os.getpid() % 200 + 20
        host_if, ns_if = f"r{lab.tag}{n}h", f"r{lab.tag}{n}n"
        self.host_ip, self.ns_ip = f"172.31.{subnet}.{4 * n + 1}", f"172.31.{subnet}.{4 * n + 2}"
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", self.ns)
        sh("ip", "address", "add", f"{self.host_ip}/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "address", "add", f"{self.ns_ip}/30", "dev", ns_if, netns=self.ns)
        sh("ip", "link", "set", ns_if, "up", netns=self.ns)
        self.api_url = f"http://{self.ns_ip}:{API_PORT}"
        self.proc: subprocess.Popen | None = None

    # -- interfaces
    def quick(self, action: str, path: str | os.PathLike) -> subprocess.CompletedProcess:
        proc = subprocess.run(["ip", "netns", "exec", self.ns, "wg-quick", action, str(path)],
                              capture_output=True, text=True, env=dict(os.environ, **QUICK_ENV), check=False)
        if proc.returncode:
            raise AssertionError(f"wg-quick {action} {path} -> rc {proc.returncode}: {proc.stderr.strip()[-800:]}")
        return proc

    def crash_interface(self, name: str) -> None:
        """The link disappears without PreDown/PostDown hooks, as on a power cut."""
        sh("ip", "link", "delete", "dev", name, netns=self.ns, check=False)
        deadline = time.monotonic() + 5
        while os.path.exists(f"/var/run/wireguard/{name}.sock") and time.monotonic() < deadline:
            time.sleep(0.05)

    def addresses(self, name: str) -> list[str]:
        out = sh("ip", "-j", "address", "show", "dev", name, netns=self.ns).stdout
        return [f"{a['local']}/{a['prefixlen']}" for a in json.loads(out)[0]["addr_info"] if a.get("scope") != "link"]

    def peer_keys(self, name: str) -> set[str]:
        return set(sh("wg", "show", name, "peers", netns=self.ns).stdout.split())

    # -- wgrest (started by wgrest_real.WgrestHost.start_wgrest)
    def stop_wgrest(self, kill: bool = False) -> None:
        """SIGTERM (wgrest dumps once more) or SIGKILL (a crash: no last dump)."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def write_conf(path: Path, text: str) -> Path:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path
