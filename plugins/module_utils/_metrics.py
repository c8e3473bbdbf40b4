# Private to the wgfleet.wireguard collection: not a public API.
"""wgrest-sync's Prometheus metrics: the sync's health and what the server's devices show.

Exposed with ``prometheus_client`` (Debian's python3-prometheus-client, 0.16 or later) on the address of the
``metrics_listen`` setting, by a small threaded HTTP server of the service's own (so that it stops with the
service). Series, all with the prefix ``wgsync_``:

- the sync: ``info`` (label ``server_id``), ``interval_seconds``, ``last_attempt_timestamp_seconds``,
  ``last_success_timestamp_seconds``, ``last_duration_seconds``, ``cycles_total`` (label ``result``: ok,
  failed), ``failures_total``, ``consecutive_failures``, ``peer_rows_written_total``, ``snapshots_written_total``;
- per interface (label ``interface``), from the last complete read: ``interface_peers``,
  ``interface_peers_recent_handshake`` (a handshake within ``metrics_recent_handshake`` seconds),
  ``interface_received_bytes`` and ``interface_sent_bytes`` (the sums of the current peers' counters: they go
  down when a peer leaves, so they are gauges);
- per peer, only with ``metrics_per_peer`` (one series per peer and interface: label cardinality grows with the
  fleet's clients): ``peer_latest_handshake_timestamp_seconds``, ``peer_received_bytes``, ``peer_sent_bytes``
  (labels ``interface``, ``public_key``).

Nothing secret is a label or a value: public keys only, never a private or preshared key, the token or a
password. Plain Python (no Ansible).
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
import threading
import time
from http.server import ThreadingHTTPServer

from ._errors import WgValueError, shown

try:
    from prometheus_client import CollectorRegistry, Counter, Gauge, MetricsHandler
    from prometheus_client.core import GaugeMetricFamily

    HAS_PROMETHEUS = True
except ImportError:  # the service refuses metrics_listen without it
    HAS_PROMETHEUS = False

PREFIX = "wgsync"
DEFAULT_LISTEN = "127.0.0.1:9586"
_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<v4>[0-9.]+)):(?P<port>[0-9]{1,5})\Z")


def parse_listen(option: str, value, need_library: bool = False) -> tuple[str, int] | None:
    """``ADDRESS:PORT`` (an IPv6 address in brackets) to listen on; empty: no metrics. ``need_library``: refuse
    an address when prometheus_client is missing (the service's check at start)."""
    if value is None or value == "":
        return None
    match = _LISTEN.match(value) if isinstance(value, str) else None
    port = int(match["port"]) if match else 0
    try:
        host = str(ipaddress.ip_address(match["v6"] or match["v4"])) if match else None
    except ValueError:
        host = None
    if host is None or not 1 <= port <= 65535:
        raise WgValueError(f"{option}: {shown(value)} is not ADDRESS:PORT (an IP address, [v6]:PORT for IPv6, "
                           "a port from 1 to 65535), e.g. 127.0.0.1:9586")
    if need_library and not HAS_PROMETHEUS:
        raise WgValueError(f"{option}: serving metrics needs the Python library prometheus_client "
                           "(Debian: python3-prometheus-client); install it or leave the setting empty")
    return host, port


def parse_handshake(text) -> int:
    """wgrest's ``last_handshake_time`` (RFC 3339, Go's zero time for never) as Unix seconds, 0 for never."""
    if not isinstance(text, str) or text.startswith("0001-01-01"):
        return 0
    # Go writes up to nine fractional digits; fromisoformat before 3.11 takes six and no "Z".
    cleaned = re.sub(r"(\.\d{1,6})\d*", r"\1", text.strip()).replace("Z", "+00:00").replace("z", "+00:00")
    try:
        when = dt.datetime.fromisoformat(cleaned)
    except ValueError:
        return 0
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0, int(when.timestamp()))


def _count(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class RecordingClient:
    """A wgrest client that keeps each device's raw peer list as the capture reads it (for the counters)."""

    def __init__(self, client, seen: dict):
        self._client, self._seen = client, seen

    def peers(self, name: str) -> list[dict]:
        peers = self._client.peers(name)
        self._seen[name] = [(p["public_key"], parse_handshake(p.get("last_handshake_time")),
                             _count(p.get("receive_bytes")), _count(p.get("transmit_bytes"))) for p in peers]
        return peers

    def __getattr__(self, name):
        return getattr(self._client, name)


class _DeviceCollector:
    """The per-interface (and optionally per-peer) series of the last complete read."""

    def __init__(self, metrics: SyncMetrics):
        self.metrics = metrics

    def collect(self):
        with self.metrics.lock:
            peers, stats, now = dict(self.metrics.peers), dict(self.metrics.stats), time.time()
        recent = self.metrics.recent_handshake
        families = {name: GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=["interface"]) for name, doc in (
            ("interface_peers", "Peers of the interface in the last complete read."),
            ("interface_peers_recent_handshake", f"Peers with a handshake in the last {recent:g} seconds."),
            ("interface_received_bytes", "Bytes received from the interface's current peers."),
            ("interface_sent_bytes", "Bytes sent to the interface's current peers."),
        )}
        per_peer = {}
        if self.metrics.per_peer:
            per_peer = {name: GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=["interface", "public_key"])
                        for name, doc in (
                            ("peer_latest_handshake_timestamp_seconds", "The peer's latest handshake (0: never)."),
                            ("peer_received_bytes", "Bytes received from the peer."),
                            ("peer_sent_bytes", "Bytes sent to the peer."))}
        for iface in sorted(peers):
            rows = stats.get(iface, [])
            families["interface_peers"].add_metric([iface], peers[iface])
            families["interface_peers_recent_handshake"].add_metric(
                [iface], sum(1 for _k, hs, _r, _t in rows if hs and now - hs <= recent))
            families["interface_received_bytes"].add_metric([iface], sum(r for _k, _h, r, _t in rows))
            families["interface_sent_bytes"].add_metric([iface], sum(t for _k, _h, _r, t in rows))
            for key, hs, rx, tx in rows if per_peer else ():
                per_peer["peer_latest_handshake_timestamp_seconds"].add_metric([iface, key], hs)
                per_peer["peer_received_bytes"].add_metric([iface, key], rx)
                per_peer["peer_sent_bytes"].add_metric([iface, key], tx)
        yield from families.values()
        yield from per_peer.values()


class SyncMetrics:
    """The service's metrics, in a registry of their own."""

    def __init__(self, server_id: str, interval: float, per_peer: bool = False, recent_handshake: float = 180.0):
        if not HAS_PROMETHEUS:
            raise WgValueError("metrics_listen: serving metrics needs the Python library prometheus_client")
        self.per_peer, self.recent_handshake = per_peer, recent_handshake
        self.lock = threading.Lock()
        self.peers: dict[str, int] = {}
        self.stats: dict[str, list] = {}
        self._seen: dict[str, list] = {}
        self.registry = registry = CollectorRegistry(auto_describe=True)
        Gauge(f"{PREFIX}_info", "The sync service (always 1), with the server id it stores under.", ["server_id"],
              registry=registry).labels(server_id).set(1)
        Gauge(f"{PREFIX}_interval_seconds", "Seconds between two syncs (the interval setting).",
              registry=registry).set(interval)
        self.last_attempt = Gauge(f"{PREFIX}_last_attempt_timestamp_seconds", "When the last sync ended.",
                                  registry=registry)
        self.last_success = Gauge(f"{PREFIX}_last_success_timestamp_seconds",
                                  "When the last successful sync ended (0: none since the service started).",
                                  registry=registry)
        self.duration = Gauge(f"{PREFIX}_last_duration_seconds", "How long the last sync took.", registry=registry)
        self.cycles = Counter(f"{PREFIX}_cycles", "Syncs, by result.", ["result"], registry=registry)
        self.failures = Counter(f"{PREFIX}_failures", "Failed syncs.", registry=registry)
        self.consecutive = Gauge(f"{PREFIX}_consecutive_failures", "Failed syncs since the last success.",
                                 registry=registry)
        self.rows = Counter(f"{PREFIX}_peer_rows_written", "Peer rows written to the database.", registry=registry)
        self.snapshots = Counter(f"{PREFIX}_snapshots_written", "Snapshots stored (syncs that changed something).",
                                 registry=registry)
        for result in ("ok", "failed"):
            self.cycles.labels(result)
        registry.register(_DeviceCollector(self))
        self._server: ThreadingHTTPServer | None = None

    def client(self, client) -> RecordingClient:
        """The wgrest client for one capture (a fresh record of what it reads)."""
        self._seen = {}
        return RecordingClient(client, self._seen)

    def observe_state(self, state: dict) -> None:
        """After a complete capture: its peer counts, and the counters the capture's wgrest read saw."""
        with self.lock:
            self.peers = {name: len(iface.peers) for name, iface in state.items()}
            self.stats = {name: rows for name, rows in self._seen.items() if name in state}

    def observe_cycle(self, ok: bool, duration: float, counts: dict, changed: bool, consecutive: int) -> None:
        now = time.time()
        self.last_attempt.set(now)
        self.duration.set(duration)
        self.consecutive.set(consecutive)
        self.cycles.labels("ok" if ok else "failed").inc()
        if ok:
            self.last_success.set(now)
            self.rows.inc(_count(counts.get("peer_rows_written")))
            if changed:
                self.snapshots.inc()
        else:
            self.failures.inc()

    # -- the HTTP endpoint

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Serve ``/metrics`` (any path, as prometheus_client does) from a daemon thread; returns the address."""
        handler = MetricsHandler.factory(self.registry)
        server_class = ThreadingHTTPServer
        if ":" in host:
            server_class = type("ThreadingHTTPServer6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        self._server = server_class((host, port), handler)
        threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True).start()
        return self._server.server_address[:2]

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
