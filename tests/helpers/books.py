"""Run one of the collection's playbook files (as an operator does) on localhost, with extra variables."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.helpers.playbook import COLLECTIONS, REPO, ensure_collection_path


def run_book(name: str, extra_vars: dict, check: bool = False, inventory: dict | None = None,
             netns: str | None = None) -> tuple[int, dict | None, str]:
    """rc, the JSON callback's data, and the whole output of ``playbooks/<name>`` run with ``extra_vars``
    (on ``inventory``, a YAML inventory as a dict, instead of localhost alone; inside ``netns`` when given)."""
    ensure_collection_path()
    with tempfile.TemporaryDirectory() as tmp:
        extra = Path(tmp) / "vars.json"
        extra.write_text(json.dumps(extra_vars))
        hosts = "localhost,"
        if inventory is not None:
            hosts = str(Path(tmp) / "inventory.json")
            Path(hosts).write_text(json.dumps(inventory))
        argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", hosts, "-c", "local",
                str(REPO / "playbooks" / name), "-e", f"@{extra}", "-e", f"ansible_python_interpreter={sys.executable}"]
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        if check:
            argv.append("--check")
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                   ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False", ANSIBLE_NOCOLOR="1")
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    try:
        data = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        data = None
    return proc.returncode, data, proc.stdout + proc.stderr


def task_results(data: dict | None, host: str = "localhost") -> dict[str, dict]:
    """Each task's result on ``host``, by task name (the last play that ran it)."""
    out = {}
    for play in (data or {}).get("plays", []):
        for task in play["tasks"]:
            if host in task["hosts"]:
                out[task["task"]["name"]] = task["hosts"][host]
    return out
