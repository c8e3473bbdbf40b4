"""_device.run: every command the modules run is bounded in time, and stopped with what it started."""
from __future__ import annotations

import os
import time

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _device
from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgCommandError, WgError


def test_a_command_out_of_time_is_stopped_with_its_children_and_named(monkeypatch, tmp_path):
    monkeypatch.setattr(_device, "COMMAND_TIMEOUT", 1.0)
    pid_file = tmp_path / "child"
    started = time.monotonic()
    with pytest.raises(WgError) as err:
        # A hook that hangs: bash with a child that holds the output pipes open.
        _device.run(["bash", "-c", f"sleep 60 & echo $! > {pid_file}; wait"])
    took = time.monotonic() - started
    assert took < 10, f"took {took:.1f} s"
    assert str(err.value) == f"bash -c sleep 60 & echo $! > {pid_file}; wait did not finish within 1 s and was stopped"
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{child}"), "the command's child outlived it"


def test_commands_still_answer_and_fail_as_before():
    assert _device.run(["cat"], stdin="hello\n").stdout == "hello\n"
    assert _device.run(["sh", "-c", "exit 3"], check=False).returncode == 3
    with pytest.raises(WgCommandError) as err:
        _device.run(["sh", "-c", "echo nope >&2; exit 2"])
    assert "rc=2" in str(err.value) and "nope" in str(err.value)
    with pytest.raises(WgError, match="command not found"):
        _device.run(["nosuch-command-wgfleet"])


def test_the_timeout_is_one_setting_of_a_few_minutes():
    assert 60 <= _device.COMMAND_TIMEOUT <= 600
