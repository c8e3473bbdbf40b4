"""The modules on the Pythons and libraries managed hosts have.

- ``debian``: Debian 12's own ``/usr/bin/python3`` with ``python3-cryptography``
  (38, without ``private_bytes_raw()``) and ``python3-psycopg2`` from apt (``make deps``);
- ``py39``: Python 3.9 (RHEL 9, Debian 11) with the oldest libraries the collection
  supports, cryptography 3.3 and psycopg2 2.8 (``.venv-py39``, made by ``make venv``).

Each runs all four modules: an interface with a generated key, a peer, a backup
into PostgreSQL, the interface removed, and a restore that brings it back with the
same key, checked with ``wg show``.
"""
from __future__ import annotations

import base64
import os
import subprocess

import pytest

from tests.conftest import needs_lab
from tests.helpers.keys import PEER_B as PEER
from tests.helpers.modules import PSK, iface_task, peer_task
from tests.helpers.netns import wg_dump
from tests.helpers.playbook import REPO, run_playbook

pytestmark = [needs_lab, pytest.mark.lab]

INTERPRETERS = {
    "debian": ("/usr/bin/python3", "make deps installs python3-cryptography and python3-psycopg2"),
    "py39": (str(REPO / ".venv-py39" / "bin" / "python"), "make venv makes .venv-py39 where pyenv has Python 3.9"),
}


def interpreter(label: str) -> str:
    python, how = INTERPRETERS[label]
    probe = subprocess.run([python, "-c", "import sys, cryptography, psycopg2; print(sys.version_info[:2])"],
                           capture_output=True, text=True, check=False) if os.path.exists(python) else None
    if probe is None or probe.returncode:
        why = f"{python} with cryptography and psycopg2 is missing ({how})"
        pytest.skip(why)
    return python


@pytest.mark.parametrize("label", ["debian", "py39"])
def test_all_four_modules_run_on_a_managed_host_python(label, lab, tmp_path, pg_server, pg_db):
    python = interpreter(label)
    ns = lab.host(label.replace("py", "p"))
    wg = lab.wg_name(label[0])
    etc = str(tmp_path / "etc")
    db = {**pg_server.module_params(pg_db, unix_socket=True),
          "encryption_key": base64.b64encode(os.urandom(32)).decode()}
    tasks = [
        iface_task(wg, etc, address=["10.10.0.1/24"], listen_port=51820),
        peer_task(wg, etc, public_key=PEER, allowed_ips=["10.10.0.2/32"], preshared_key=PSK, name="laptop"),
        {"name": "backup", "wgfleet.wireguard.wg_backup": {"server_id": f"host-{label}", "config_dir": etc, **db},
         "register": "backup"},
        iface_task(wg, etc, register="gone", state="absent"),
        {"name": "restore",
         "wgfleet.wireguard.wg_restore": {"server_id": f"host-{label}", "config_dir": etc, "apply": True, **db}},
        {"name": "version", "ansible.builtin.command": "{{ ansible_python_interpreter }} -c 'import sys, "
         "cryptography; print(sys.version_info[:2], cryptography.__version__)'", "changed_when": False},
    ]
    res = run_playbook(tasks, netns=ns, extra_vars={"ansible_python_interpreter": python})
    assert res.rc == 0, res.output[-3000:]
    print(label, res["version"]["stdout"])
    public_key = res["r"]["public_key"]
    assert res["r"]["private_key_source"] == "generated"
    assert res["p"]["changed"] and res["backup"]["changed"] and res["gone"]["applied"] == "down"
    assert res["restore"]["changed"]
    dump = wg_dump(ns, wg)
    assert dump[0][1] == public_key, "the restored interface has another key"
    assert dump[1][0] == PEER and dump[1][1] == PSK
