"""wgrest-sync's metrics, scraped by a real Prometheus (Debian's package) on loopback, against the real wgrest,
a real client handshake and a real PostgreSQL; and the firewall role's rules for the metrics port.

The values are checked against ``wg show dump`` and the database; the exposition is read by a tiny parser here
and by Prometheus itself; the alert rules are the block of docs/wgrest-sync.md, loaded as they are written (only
their ``for`` set to 0 s).
"""
from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import types
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from ansible_collections.wgfleet.wireguard.plugins.module_utils._peers import PeerSpec
from tests.conftest import needs_lab
from tests.helpers.netns import sh
from tests.helpers.playbook import COLLECTIONS, REPO, run_playbook
from tests.helpers.postgres import needs_postgres
from tests.helpers.wgrest_real import Client
from tests.integration.test_wgrest_sync import Setup

pytestmark = [needs_lab, needs_postgres, pytest.mark.lab]
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def exposition(text: str) -> dict[tuple, float]:
    """The text format's samples: (name, frozenset of labels) -> value (the comment lines skipped)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        assert match, f"not an exposition line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match[2] or ""))
        out[(match[1], labels)] = float(match[3])
    return out


def sample(samples: dict, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


def alert_rules(for_seconds: str = "0s") -> dict:
    text = (REPO / "docs" / "wgrest-sync.md").read_text()
    block = text.split("<!-- alert rules: begin -->\n```yaml\n", 1)[1].split("```\n<!-- alert rules: end -->", 1)[0]
    rules = yaml.safe_load(block)
    for rule in rules["groups"][0]["rules"]:
        rule["for"] = for_seconds
    return rules


class Prometheus:
    """A real Prometheus on loopback, scraping one target every second and evaluating the documented rules."""

    def __init__(self, base: Path, target: str):
        self.base, self.port = base, free_port()
        base.mkdir(parents=True, exist_ok=True)
        (base / "rules.yml").write_text(yaml.safe_dump(alert_rules()))
        (base / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [str(base / "rules.yml")],
            "scrape_configs": [{"job_name": "wgrest-sync", "static_configs": [{"targets": [target]}]}],
        }))
        check = subprocess.run(["promtool", "check", "config", str(base / "prometheus.yml")], capture_output=True,
                               text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log = open(base / "prometheus.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([PROMETHEUS, f"--config.file={base / 'prometheus.yml'}",
                                      f"--storage.tsdb.path={base / 'data'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=base)
        self.wait(lambda: self.get("/-/ready", raw=True), 60, "Prometheus never became ready")

    def get(self, path: str, raw: bool = False, **query):
        url = f"http://127.0.0.1:{self.port}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                body = resp.read().decode()
        except OSError:
            return None
        return body if raw else json.loads(body)["data"]

    def query(self, expr: str) -> list:
        return (self.get("/api/v1/query", query=expr) or {}).get("result", [])

    def firing(self) -> set[str]:
        alerts = (self.get("/api/v1/alerts") or {}).get("alerts", [])
        return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}

    def wait(self, predicate, timeout: float, message: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"Prometheus exited: {(self.base / 'prometheus.log').read_text()[-1500:]}")
            value = predicate()
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError(f"{message}; log tail: {(self.base / 'prometheus.log').read_text()[-800:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def setup(lab, pg_server, pg_db, tmp_path):
    made = Setup(lab, pg_server, pg_db, tmp_path)
    try:
        yield made
    finally:
        made.stop()


def scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        return resp.read().decode()


def test_prometheus_scrapes_the_sync_and_the_stale_and_failing_alerts_fire(setup, lab, tmp_path):
    # A real client with a handshake through the server, its peer added through the API.
    server = types.SimpleNamespace(ns=setup.host.ns, private_key=setup.iface.private_key)
    client = Client(lab, server, tmp_path, "10.231.10.9", server_address="10.231.10.1")
    setup.backend.apply([PeerSpec(public_key=client.public_key, allowed_ips=["10.231.10.9/32"])], False, False)
    assert client.can_reach_server(), "no handshake through the tunnel"

    address = f"127.0.0.1:{free_port()}"
    metrics_env = {"WGSYNC_METRICS_LISTEN": address, "WGSYNC_METRICS_PER_PEER": "true"}
    setup.start(metrics_env)
    setup.wait_status(lambda s: s.get("ok") is True, timeout=20)
    prom = Prometheus(tmp_path / "prometheus", address)
    try:
        # -- the endpoint, read here: counts from the device and the database, no secret anywhere
        text = prom.wait(lambda: (t := _try_scrape(address)) and "wgsync_interface_peers{" in t and t, 20,
                         "no interface series")
        for secret in (setup.iface.private_key, setup.key, "sync-token-a41e", setup.pg.params()["password"]):
            assert secret not in text
        samples = exposition(text)
        dump = setup.host.peers(setup.name)
        assert sample(samples, "wgsync_interface_peers", interface=setup.name) == len(dump) == 2
        assert sample(samples, "wgsync_interface_peers_recent_handshake", interface=setup.name) == 1
        received = sample(samples, "wgsync_interface_received_bytes", interface=setup.name)
        assert 0 < received <= sum(int(row[5]) for row in dump.values())
        handshake = sample(samples, "wgsync_peer_latest_handshake_timestamp_seconds", interface=setup.name,
                           public_key=client.public_key)
        assert 0 < int(dump[client.public_key][4]) - handshake < 180 or int(dump[client.public_key][4]) == handshake
        assert sample(samples, "wgsync_peer_latest_handshake_timestamp_seconds", interface=setup.name,
                      public_key=setup.file_peer.public_key) == 0
        row = setup.sync_row()
        assert row["ok"] and sample(samples, "wgsync_consecutive_failures") == 0
        assert sample(samples, "wgsync_peer_rows_written_total") == setup.count("peers") == 2
        assert sample(samples, "wgsync_snapshots_written_total") == setup.count("snapshots") == 1
        assert sample(samples, "wgsync_info", server_id="srv-sync-test") == 1
        assert abs(sample(samples, "wgsync_last_success_timestamp_seconds") - row["last_success_at"].timestamp()) < 5

        # -- Prometheus scrapes it, and neither alert fires while the sync runs
        prom.wait(lambda: prom.query('up{job="wgrest-sync"} == 1'), 30, "Prometheus never scraped the sync")
        prom.wait(lambda: prom.query("wgsync_cycles_total{result=\"ok\"} > 1"), 30, "no second cycle scraped")
        time.sleep(3)
        assert prom.firing() == set(), prom.get("/api/v1/alerts")

        # -- the sync stops: the stale alert fires (three 1 s intervals, then the next evaluations)
        setup.stop()
        stopped = time.monotonic()
        prom.wait(lambda: "WgrestSyncStale" in prom.firing(), 30, "the stale alert never fired")
        assert time.monotonic() - stopped < 30

        # -- it runs again but cannot read wgrest (a wrong token): failing, then stale too
        setup.start({**metrics_env, "WGSYNC_WGREST_TOKEN_FILE": "", "WGSYNC_WGREST_TOKEN": "a-wrong-token-0000"})
        prom.wait(lambda: prom.query('up{job="wgrest-sync"} == 1'), 30, "the restarted sync was never scraped")
        prom.wait(lambda: "WgrestSyncFailing" in prom.firing(), 40, "the failing alert never fired")
        failures = prom.query("wgsync_consecutive_failures")
        assert failures and float(failures[0]["value"][1]) >= 3
        assert setup.sync_row()["consecutive_failures"] >= 3
    finally:
        prom.stop()


def _try_scrape(address: str) -> str | None:
    try:
        return scrape(address)
    except OSError:
        return None


# --- the firewall role: the metrics port is guarded like the API's ---------------------------------------------

SERVE = """
import sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.wgfleet.wireguard.plugins.module_utils._metrics import SyncMetrics
served = [SyncMetrics(f"fw-{port}", 60.0) for port in sys.argv[2:]]
for metrics, port in zip(served, sys.argv[2:]):
    metrics.serve("0.0.0.0", int(port))
print("ready", flush=True)
time.sleep(600)
"""


def reachable(ns: str, address: str, port: int) -> bool:
    code = (f"import socket; s = socket.socket(); s.settimeout(2); "
            f"print(s.connect_ex(({address!r}, {port})) == 0)")
    return sh("ip", "netns", "exec", ns, sys.executable, "-c", code).stdout.strip() == "True"


def test_the_metrics_port_is_refused_from_another_host_like_the_api(lab):
    srv, cli, other = lab.host("srv"), lab.host("cli"), lab.host("mon")
    srv_ip, _cli_ip = lab.link(srv, cli)
    srv_ip2, mon_ip = lab.link(srv, other)
    metrics_port, api_port = 9586, 51822
    server = subprocess.Popen(["ip", "netns", "exec", srv, sys.executable, "-c", SERVE, str(COLLECTIONS),
                               str(metrics_port), str(api_port)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        assert reachable(cli, srv_ip, metrics_port) and reachable(other, srv_ip2, metrics_port)  # before the role
        role = {"name": "firewall", "ansible.builtin.include_role": {"name": "wgfleet.wireguard.firewall"},
                "vars": {"firewall_interfaces": [], "firewall_forward": False, "firewall_nat": False,
                         "firewall_persistent": False, "firewall_ipv4_forwarding": False,
                         "firewall_ipv6_forwarding": False, "firewall_sysctl_file": "/nonexistent/wgfleet-sysctl.conf",
                         "firewall_api_allowed_sources": [f"{mon_ip}/32"]}}
        res = run_playbook([role], netns=srv)
        assert res.rc == 0, res.output[-3000:]
        rules = sh("ip", "netns", "exec", srv, "iptables", "-S", "INPUT").stdout
        for port in (metrics_port, api_port):
            assert f"--dport {port}" in rules and "-j DROP" in rules
            assert not reachable(cli, srv_ip, port), f"port {port} reachable from the client"
            assert reachable(other, srv_ip2, port), f"port {port} not reachable from the allowed source"
            assert reachable(srv, "127.0.0.1", port), f"port {port} not reachable on loopback"
        again = run_playbook([role], netns=srv)
        assert again.rc == 0, again.output[-2000:]
        assert [name for name, task in again.tasks.items() if task.get("changed")] == []
    finally:
        server.terminate()
        server.wait(timeout=10)
