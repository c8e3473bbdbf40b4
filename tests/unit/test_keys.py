"""Keys on the Pythons and libraries managed hosts have: the distributions' cryptography, or none."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys
from tests.helpers.playbook import COLLECTIONS

SCRIPT = f"""
import json, sys
sys.path.insert(0, {str(COLLECTIONS)!r})
if sys.argv[1] == "without":
    sys.modules["cryptography"] = None  # as on a host without the library
from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys
private = _keys.generate_private_key()
print(json.dumps({{"has": _keys.HAS_CRYPTOGRAPHY, "private": private, "public": _keys.public_key(private)}}))
"""


def keys_made_by(python: str, mode: str = "with") -> dict:
    proc = subprocess.run([python, "-c", SCRIPT, mode], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def wg_pubkey(private: str) -> str:
    return subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True, check=True).stdout.strip()


needs_wg = pytest.mark.skipif(shutil.which("wg") is None, reason="needs wireguard-tools")


@needs_wg
def test_without_cryptography_the_wg_tool_makes_and_derives_keys():
    made = keys_made_by(sys.executable, "without")
    assert made["has"] is False
    assert wg_pubkey(made["private"]) == made["public"]
    assert _keys.public_key(made["private"]) == made["public"], "both ways must derive the same public key"


@needs_wg
@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="no system Python")
def test_the_distribution_python_and_its_packaged_cryptography_make_keys():
    """Debian 12: /usr/bin/python3 3.11 with python3-cryptography 38, which has no private_bytes_raw()."""
    probe = subprocess.run(["/usr/bin/python3", "-c", "import cryptography; print(cryptography.__version__)"],
                           capture_output=True, text=True, check=False)
    if probe.returncode:
        pytest.skip("the system Python has no cryptography package (make deps installs python3-cryptography)")
    made = keys_made_by("/usr/bin/python3")
    assert made["has"] is True
    assert wg_pubkey(made["private"]) == made["public"]


@needs_wg
def test_generated_keys_are_clamped_as_wg_genkey_clamps_them():
    raw = _keys.key_bytes(_keys.generate_private_key())
    assert raw[0] & 7 == 0 and raw[31] & 128 == 0 and raw[31] & 64 == 64
