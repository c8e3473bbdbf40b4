"""The real wgrest (v2.0.0-alpha.1) for tests: the binary, unpacked once and checked, and a server host to run it.

The binary comes from the project's vendored copy (``shared/vendor/wgrest`` beside the
repository, or ``$WGFLEET_WGREST_VENDOR``): the xz file is unpacked into a cache
(``$XDG_CACHE_HOME/wgfleet``, default ``~/.cache/wgfleet``) and its SHA-256 checked
against the vendor's SHA256SUMS before it is used.

wgrest finds wireguard-go devices through ``/run/wireguard/*.sock``, which every
network namespace on the machine shares: :class:`WgrestHost` gives each server host
a private ``/run/wireguard`` (a mount namespace with a tmpfs, held by a sleeping
process inside the host's network namespace). Everything that talks to its devices
(wg-quick, wg, wgrest, a playbook) runs in there through ``nsenter``; ``Lab.close()``
ends every process of the namespace, and the tmpfs goes with the last of them.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import lzma
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys
from tests.helpers.netns import ping, sh, wg_dump
from tests.helpers.server_host import API_PORT, ServerHost, write_conf

REPO = Path(__file__).resolve().parents[2]
VERSION = "v2.0.0-alpha.1"
ASSET = f"wgrest-{VERSION}-linux-amd64"
QUICK_ENV = {"WG_QUICK_USERSPACE_IMPLEMENTATION": "wireguard-go"}


def vendor_dir() -> Path:
    return Path(os.environ.get("WGFLEET_WGREST_VENDOR") or REPO.parent / "shared" / "vendor" / "wgrest")


def _expected_sha256() -> str | None:
    try:
        for line in (vendor_dir() / "SHA256SUMS").read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == ASSET:
                return parts[0]
    except OSError:
        return None
    return None


def wgrest_binary() -> Path:
    """The checked binary, unpacked into the cache on first use; skips the test when the vendor copy is missing."""
    expected = _expected_sha256()
    packed = vendor_dir() / f"{ASSET}.xz"
    if expected is None or not packed.is_file():
        why = f"needs the vendored wgrest ({packed} and SHA256SUMS; set WGFLEET_WGREST_VENDOR)"
        pytest.skip(why)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wgfleet"
    target = cache / f"{ASSET}-{expected[:16]}"
    if target.is_file() and _sha256(target) == expected:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".wgrest-", dir=cache)
    try:
        with os.fdopen(fd, "wb") as out, lzma.open(packed) as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        if _sha256(Path(tmp)) != expected:
            raise AssertionError(f"{packed} does not unpack to the binary named in SHA256SUMS")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)  # atomic: parallel sessions race harmlessly
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class WgrestHost(ServerHost):
    """A server host (namespace, veth to the test process) with a private /run/wireguard and the real wgrest."""

    def __init__(self, lab, role: str = "srv"):
        super().__init__(lab, role)
        script = ("mkdir -p /run/wireguard && mount -t tmpfs -o mode=0700 wgfleet-test /run/wireguard "
                  "&& echo ready && exec sleep 86400")
        self.holder = subprocess.Popen(["ip", "netns", "exec", self.ns, "unshare", "-m", "--propagation", "private",
                                        "sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
        line = self.holder.stdout.readline()
        if line.strip() != "ready":
            raise AssertionError(f"no private /run/wireguard: {self.holder.stderr.read()[-500:]}")
        self.prefix = ["nsenter", "-t", str(self.holder.pid), "-m", "-n"]
        self.log_path: Path | None = None

    def run(self, *argv, input: str | None = None, env: dict | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
        """A command on this host (its network and its /run/wireguard)."""
        proc = subprocess.run([*self.prefix, *map(str, argv)], input=input, capture_output=True, text=True,
                              env=dict(os.environ, **(env or {})), timeout=timeout, check=False)
        if check and proc.returncode:
            raise AssertionError(f"{' '.join(map(str, argv))} -> rc {proc.returncode}: {proc.stderr.strip()[-800:]}")
        return proc

    # -- interfaces, read independently of the code under test
    def quick(self, action: str, path) -> subprocess.CompletedProcess:
        return self.run("wg-quick", action, path, env=QUICK_ENV)

    def dump(self, name: str) -> list[list[str]]:
        """``wg show NAME dump`` as rows of fields."""
        return [line.split("\t") for line in self.run("wg", "show", name, "dump").stdout.splitlines()]

    def peers(self, name: str) -> dict[str, list[str]]:
        """The device's peers: public key -> the fields of its ``wg show dump`` row."""
        return {row[0]: row for row in self.dump(name)[1:]}

    def peer_keys(self, name: str) -> set[str]:
        return set(self.peers(name))

    def crash_interface(self, name: str) -> None:
        """The link disappears without PreDown/PostDown hooks, as on a power cut."""
        self.run("ip", "link", "delete", "dev", name, check=False)
        deadline = time.monotonic() + 5
        while self.run("test", "-e", f"/run/wireguard/{name}.sock", check=False).returncode == 0:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)

    def addresses(self, name: str) -> list[str]:
        out = self.run("ip", "-j", "address", "show", "dev", name).stdout
        return [f"{a['local']}/{a['prefixlen']}" for a in json.loads(out)[0]["addr_info"] if a.get("scope") != "link"]

    # -- the real wgrest
    def start_wgrest(self, config_dir, token: str | None = "test-token", dump_interval: str = "10m",
                     extra: list[str] | None = None) -> None:
        argv = [*self.prefix, str(wgrest_binary()), "--listen", f"0.0.0.0:{API_PORT}",
                "--config-dir", str(config_dir), "--dump-interval", dump_interval]
        if token is not None:
            argv += ["--static-auth-token", token]
        Path(config_dir).mkdir(parents=True, exist_ok=True)
        self.log_path = Path(config_dir).parent / f"wgrest-{self.ns}.log"
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen([*argv, *(extra or [])], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"wgrest exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.api_url}/version", timeout=1):
                return
            time.sleep(0.1)
        raise AssertionError("wgrest did not answer within 15 s")


class Client:
    """A client host: its own namespace and interface, with the server as its one peer (keepalive 1 s).

    ``server`` has ``ns`` and ``private_key``; the server's tunnel address is 10.231.8.1 unless ``server_address``.
    """

    def __init__(self, lab, server, tmp_path, address: str, server_address: str = "10.231.8.1"):
        self.ns = lab.host("cli")
        server_ip, _ip = lab.link(server.ns, self.ns)
        self.private_key = _keys.generate_private_key()
        self.public_key = _keys.public_key(self.private_key)
        self.name = lab.wg_name("c")
        self.server_peer = (f"[Peer]\nPublicKey = {_keys.public_key(server.private_key)}\n"
                            f"Endpoint = {server_ip}:51820\nAllowedIPs = {server_address}/32\nPersistentKeepalive = 1\n")
        self.server_address = server_address
        conf = write_conf(tmp_path / "client" / f"{self.name}.conf",
                          f"[Interface]\nPrivateKey = {self.private_key}\nAddress = {address}/24\n\n"
                          + self.server_peer)
        sh("env", "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go", "wg-quick", "up", str(conf), netns=self.ns)

    def reconnect(self) -> None:
        """Forget the session with the server, so the next packet needs a new handshake."""
        server_key = self.server_peer.split("PublicKey = ", 1)[1].split("\n", 1)[0]
        sh("wg", "set", self.name, "peer", server_key, "remove", netns=self.ns)
        sh("wg", "addconf", self.name, "/dev/stdin", input=self.server_peer, netns=self.ns)

    def handshake(self) -> int:
        """The client's latest handshake with the server (0: none since it last reconnected)."""
        return int(wg_dump(self.ns, self.name)[1][4])

    def can_reach_server(self, deadline: int = 8) -> bool:
        """A bounded ping; the default outlasts one handshake retry (5 s), for a first packet sent too early."""
        return ping(self.ns, self.server_address, count=2, deadline=deadline)
