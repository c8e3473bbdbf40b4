"""The EXAMPLES of every module run as written, on a fresh host.

The host is a network namespace with private /etc/wireguard and
/run/wireguard (a mount namespace), so the examples' real paths and names
(wg0, wg1) touch nothing outside the test.
"""
from __future__ import annotations

import importlib
import os
import sys

import pytest
import yaml

from tests.conftest import needs_lab
from tests.helpers.netns import sh
from tests.helpers.playbook import COLLECTIONS

pytestmark = [needs_lab, pytest.mark.lab]

# Modules whose examples need nothing but a Linux host with WireGuard, in the order they build on each other.
HOST_ONLY = ("wg_interface", "wg_peer", "wg_interface_info")


def examples(module: str) -> list[dict]:
    mod = importlib.import_module(f"ansible_collections.wgfleet.wireguard.plugins.modules.{module}")
    return yaml.safe_load(mod.EXAMPLES)


def test_host_examples_run_as_written(lab, tmp_path):
    ns = lab.host("ex")
    tasks = [task for module in HOST_ONLY for task in examples(module)]
    book = tmp_path / "examples.yml"
    book.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], sort_keys=False))
    playbook = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
                "-e", f"ansible_python_interpreter={sys.executable}", str(book)]
    script = ("mount -t tmpfs -o mode=0700 tmpfs /etc/wireguard && mkdir -p /run/wireguard && "
              "mount -t tmpfs tmpfs /run/wireguard && "
              f"ANSIBLE_COLLECTIONS_PATH={COLLECTIONS} {' '.join(playbook)} && echo ==DUMP== && wg show wg0 dump && echo ==FILES== && ls /etc/wireguard")
    os.makedirs("/etc/wireguard", exist_ok=True)
    proc = sh("unshare", "--mount", "--propagation", "private", "sh", "-c", script, netns=ns, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "failed=0" in proc.stdout.split("PLAY RECAP")[1]
    # wg0 ends with the two peers of the exclusive example; wg1 was made and removed again.
    dump, files = proc.stdout.split("==DUMP==")[1].split("==FILES==")
    peers = {line.split("\t")[0] for line in dump.strip().splitlines()[1:]}
    assert peers == {"TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=", "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="}
    assert files.split() == ["wg0.conf"]
