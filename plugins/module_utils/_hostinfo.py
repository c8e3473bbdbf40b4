# Private to the wgfleet.wireguard collection: not a public API.
"""What runs on a host (wg_interface_info): each interface's file and live device, its peers with their
latest handshake, transfer counters, endpoint and label.

Read only: the device through ``_device.read_dump_stats`` (one ``wg show dump``), the file through the one
parser. Nothing returned is a secret: a peer says whether it has a preshared key, never the key; an
interface gives its public key, never its private one. Plain Python (no Ansible).
"""
from __future__ import annotations

import time

from . import _device, _files
from ._backup import DeviceSource, check_config_dir, host_interfaces
from ._keys import public_key
from ._values import check_ifname, check_int

# WireGuard starts a new handshake every 2 minutes while traffic flows; a session older than 3 minutes is gone.
DEFAULT_RECENT_HANDSHAKE = 180
MAX_RECENT_HANDSHAKE = 7 * 86400


def interface_info(config_dir: str, names=None, recent_handshake: int = DEFAULT_RECENT_HANDSHAKE,
                   now: float | None = None) -> dict:
    """Every interface of the host (every ``NAME.conf`` and every running device), or exactly ``names``."""
    check_config_dir("config_dir", config_dir)
    recent_handshake = check_int("recent_handshake", recent_handshake, 1, MAX_RECENT_HANDSHAKE)
    if names:
        chosen = sorted({check_ifname("interfaces", n) for n in names})
    else:
        chosen = host_interfaces(config_dir, DeviceSource())
    now = time.time() if now is None else now
    out = {name: _one(config_dir, name, recent_handshake, now) for name in chosen}
    return {"interfaces": out, "counts": {
        "interfaces": len(out), "running": sum(1 for i in out.values() if i["running"]),
        "peers": sum(len(i["peers"]) for i in out.values()),
        "recent_handshakes": sum(i["counts"]["recent_handshakes"] for i in out.values())}}


def _one(config_dir: str, name: str, recent: int, now: float) -> dict:
    path = _files.config_path(config_dir, name)
    from_file = _files.read_config(path)
    found = _device.read_dump_stats(name)
    live, stats = found if found else (None, {})
    private = (live.private_key if live else None) or (from_file.private_key if from_file else None)
    configured = from_file.peer_map() if from_file else {}
    running = live.peer_map() if live else {}
    peers = []
    # File order first, then the peers only the device has, by key (as a backup stores them).
    for key in [*configured, *sorted(k for k in running if k not in configured)]:
        conf, dev, stat = configured.get(key), running.get(key), stats.get(key)
        handshake = stat.latest_handshake if stat and stat.latest_handshake else None
        peer = dev or conf
        peers.append({
            "public_key": key,
            "name": conf.name if conf else None,
            "allowed_ips": list(peer.allowed_ips),
            "endpoint": dev.endpoint if dev else None,
            "configured_endpoint": conf.endpoint if conf else None,
            "persistent_keepalive": peer.persistent_keepalive,
            "has_preshared_key": bool(peer.preshared_key),
            "in_file": conf is not None,
            "live": dev is not None,
            "latest_handshake": handshake,
            "handshake_age_seconds": max(0, int(now) - handshake) if handshake else None,
            "rx_bytes": stat.rx_bytes if stat else 0,
            "tx_bytes": stat.tx_bytes if stat else 0,
        })
    return {
        "file": path if from_file is not None else None,
        "running": live is not None,
        "public_key": public_key(private) if private else None,
        "listen_port": (live.listen_port if live else None) or (from_file.listen_port if from_file else None),
        "address": list((live.address if live and live.address else None) or (from_file.address if from_file else ())),
        "peers": peers,
        "counts": {
            "peers": len(peers),
            "live_only": sum(1 for p in peers if not p["in_file"]),
            "file_only": sum(1 for p in peers if not p["live"]),
            "recent_handshakes": sum(1 for p in peers if p["handshake_age_seconds"] is not None
                                     and p["handshake_age_seconds"] <= recent),
            "rx_bytes": sum(p["rx_bytes"] for p in peers),
            "tx_bytes": sum(p["tx_bytes"] for p in peers),
        },
    }
