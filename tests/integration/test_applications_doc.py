"""docs/applications.md, run as written: its sh blocks in bash, its python block in Python, against the real wgrest.

The blocks are read from the document (never copied here), so the page cannot drift
from what works. The client file the Python block writes is brought up by wg-quick
in a client namespace and must complete a handshake and carry a ping; the device is
read with ``wg show dump``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys, _wgrest_dump
from tests.conftest import needs_lab
from tests.helpers.netns import ping, sh
from tests.helpers.playbook import REPO
from tests.helpers.server_host import write_conf
from tests.helpers.wgrest_real import WgrestHost

pytestmark = [needs_lab, pytest.mark.lab]
TOKEN = "applications-doc-token-83"
DOC = REPO / "docs" / "applications.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", DOC.read_text(), flags=re.S | re.M)


@pytest.fixture
def server(lab, tmp_path):
    host = WgrestHost(lab)
    host.name = lab.wg_name("s")
    host.private_key = _keys.generate_private_key()
    host.conf = write_conf(tmp_path / "etc" / f"{host.name}.conf",
                           f"[Interface]\nPrivateKey = {host.private_key}\nListenPort = 51820\n"
                           f"Address = 10.10.0.1/24\nPostUp = {_wgrest_dump.restore_hook(str(tmp_path / 'wgrest'))}\n")
    host.quick("up", host.conf)
    host.start_wgrest(tmp_path / "wgrest", token=TOKEN)
    host.client_ns = lab.host("cli")
    host.underlay, _client_ip = lab.link(host.ns, host.client_ns)
    return host


def test_the_documented_requests_make_a_peer_whose_config_completes_a_handshake(lab, server, tmp_path):
    shell, python = blocks("sh"), blocks("python")
    assert len(shell) >= 4 and len(python) == 1, "docs/applications.md lost its examples"
    work = tmp_path / "app"
    work.mkdir()
    env = dict(os.environ, API=server.api_url, TOKEN=TOKEN, DEV=server.name)

    script = "set -euo pipefail\n" + "\n".join(shell)
    done = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    device = server.peers(server.name)
    chosen = (work / "client.pub").read_text().strip()
    assert device[chosen][3] == "10.10.0.130/32" and device[chosen][1] == (work / "client.psk").read_text().strip()
    assert "10.10.0.130/32" in done.stdout  # the listing shows it
    generated = (work / "generated.json").read_text()
    assert re.search(r'"public_key":\s*"([^"]+)"', generated).group(1) not in device, "the revoke did not revoke"
    assert len(device) == 1

    env.update(ENDPOINT=f"{server.underlay}:51820")
    ran = subprocess.run([sys.executable, "-c", python[0]], cwd=work, env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr[-2000:]
    conf = (work / "client.conf").read_text()
    assert (work / "client.conf").stat().st_mode & 0o077 == 0
    key = re.search(r"^peer (\S+) at 10\.10\.0\.129/32", ran.stdout, flags=re.M).group(1)
    assert server.peers(server.name)[key][3] == "10.10.0.129/32"
    assert f"PublicKey = {_keys.public_key(server.private_key)}" in conf

    # The client brings the very file up (its DNS line aside: resolvconf would change this machine's resolver).
    name = lab.wg_name("c")
    up = write_conf(tmp_path / "up" / f"{name}.conf",
                    "\n".join(line for line in conf.split("\n") if not line.startswith("DNS = ")))
    sh("env", "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go", "wg-quick", "up", str(up), netns=server.client_ns)
    assert ping(server.client_ns, "10.10.0.1", count=2, deadline=8), "no traffic through the documented config"
    assert int(server.peers(server.name)[key][4]) > 0


def test_the_trap_the_page_warns_of_is_real(server, tmp_path):
    """The page's "don't": no JSON content type, and wgrest makes a peer with a generated key and no allowed IPs."""
    trap = next(b for b in blocks("text") if "-d '" in b and "Content-Type" not in b)
    key = _keys.public_key(_keys.generate_private_key())
    command = trap.replace("curl -X", "curl -fsS -X").replace('"public_key": "..."', f'"public_key": "{key}"')
    env = dict(os.environ, API=server.api_url, TOKEN=TOKEN, DEV=server.name)
    subprocess.run(["bash", "-c", command], env=env, cwd=Path(tmp_path), capture_output=True, check=True, timeout=30)
    device = server.peers(server.name)
    assert key not in device and len(device) == 1 and next(iter(device.values()))[3] == "(none)"
