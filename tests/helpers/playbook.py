"""Run tasks through ``ansible-playbook`` (optionally inside a namespace) and read each task's result."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / ".collections"


def ensure_collection_path() -> Path:
    """``.collections/ansible_collections/wgfleet/wireguard`` -> the repository, so Ansible finds it."""
    link = COLLECTIONS / "ansible_collections" / "wgfleet" / "wireguard"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../../..").as_posix())
    return COLLECTIONS


class PlaybookResult:
    def __init__(self, proc, data):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.data = data
        self.tasks = {}
        for play in (data or {}).get("plays", []):
            for task in play["tasks"]:
                self.tasks[task["task"]["name"]] = next(iter(task["hosts"].values()), {})

    def __getitem__(self, name):
        return self.tasks[name]

    @property
    def output(self):
        return self.stdout + self.stderr


def run_playbook(tasks, netns=None, check=False, diff=False, verbosity=0, extra_vars=None, gather_facts=False,
                 prefix=None):
    """Run ``tasks`` (a list of task dicts) on localhost; results by task name.

    ``prefix``: a command that runs ansible-playbook elsewhere (``nsenter ...`` into a test host).
    """
    ensure_collection_path()
    play = [{"hosts": "localhost", "gather_facts": gather_facts, "tasks": tasks}]
    with tempfile.TemporaryDirectory() as tmp:
        book = Path(tmp) / "play.yml"
        book.write_text(yaml.safe_dump(play, sort_keys=False))
        argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local", str(book),
                "-e", f"ansible_python_interpreter={sys.executable}"]
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if verbosity:
            argv.append("-" + "v" * verbosity)
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        if prefix:
            argv = [*prefix, *argv]
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                   ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="False",
                   ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    try:
        data = json.loads(proc.stdout[proc.stdout.index("{"):]) if "{" in proc.stdout else None
    except ValueError:
        data = None
    return PlaybookResult(proc, data)
