# Private to the wgfleet.wireguard collection: not a public API.
"""Peers of one interface: plan a change once, then apply it through a backend.

``plan_peers`` is pure and backend-free: given the peers a backend holds now and
what the user asked for, it says which peers to add, update and remove. The
file backend here applies that to the wg-quick file and the running device; a
REST backend (wgrest) applies the same plan through its API.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import _device, _files
from ._errors import WgValueError
from ._keys import check_key
from ._wgconf import Interface, Peer, render

# Per-peer options a user sets; None means "keep what the peer has".
PEER_OPTIONS = ("allowed_ips", "endpoint", "preshared_key", "persistent_keepalive", "name")


@dataclass
class PeerSpec:
    public_key: str
    state: str = "present"
    allowed_ips: list | None = None
    endpoint: str | None = None
    preshared_key: str | None = field(default=None, repr=False)
    persistent_keepalive: int | None = None
    name: str | None = None

    @classmethod
    def from_params(cls, params: dict, where: str = "") -> PeerSpec:
        prefix = f"{where}." if where else ""
        unknown = set(params) - {"public_key", "state", *PEER_OPTIONS}
        if unknown:
            raise WgValueError(f"{prefix}{sorted(unknown)[0]}: unknown peer option")
        key = params.get("public_key")
        check_key(f"{prefix}public_key", key)
        state = params.get("state") or "present"
        if state not in ("present", "absent"):
            raise WgValueError(f"{prefix}state: {state!r} is not present or absent")
        return cls(**{k: params.get(k) for k in ("public_key", *PEER_OPTIONS)}, state=state)

    def build(self, current: Peer | None) -> Peer:
        """The peer as it should be: ``current`` with every option that was given applied."""
        changes = {}
        for option in PEER_OPTIONS:
            given = getattr(self, option)
            if given is not None:
                # An empty value clears the setting.
                changes[option] = given if given != "" else None
        try:
            return current.replace(**changes) if current else Peer(public_key=self.public_key, **changes)
        except WgValueError as exc:
            raise WgValueError(f"peer {self.public_key}: {exc}") from None


@dataclass
class PeerPlan:
    desired: list[Peer]
    added: list[Peer] = field(default_factory=list)
    updated: list[Peer] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> dict:
        return {
            "added": [p.public_key for p in self.added],
            "updated": [p.public_key for p in self.updated],
            "removed": list(self.removed),
        }


def plan_peers(current: list[Peer], specs: list[PeerSpec], exclusive: bool = False) -> PeerPlan:
    """Compare what a backend holds with what was asked; peers keep their order, new ones go last."""
    by_key = {p.public_key: p for p in current}
    wanted: dict[str, Peer | None] = {}
    for spec in specs:
        if spec.public_key in wanted:
            raise WgValueError(f"peers: public key {spec.public_key!r} is listed twice")
        wanted[spec.public_key] = spec.build(by_key.get(spec.public_key)) if spec.state == "present" else None
    plan = PeerPlan(desired=[])
    for peer in current:
        target = wanted.get(peer.public_key, None if exclusive else peer)
        if target is None:
            plan.removed.append(peer.public_key)
            continue
        plan.desired.append(target)
        if target != peer:
            plan.updated.append(target)
    for key, target in wanted.items():
        if target is not None and key not in by_key:
            plan.desired.append(target)
            plan.added.append(target)
    return plan


def live_drift(desired: list[Peer], live: Interface, exclusive: bool, changed: set[str]) -> tuple[list[Peer], list[str]]:
    """Peers to send to the running device, and live peers to remove.

    A peer goes live when the plan changed it (``changed``) or its live state
    differs from ``desired``. Endpoints are left out of that comparison: WireGuard
    learns them from traffic (roaming), so a live endpoint is no drift. Live peers
    that the file does not know are left alone unless ``exclusive``: an
    application may have added them through the API moments ago.
    """
    live_map = live.peer_map()
    upsert = []
    for peer in desired:
        current = live_map.get(peer.public_key)
        if peer.public_key in changed or current is None or current != peer.replace(name=None, endpoint=current.endpoint):
            upsert.append(peer)
    remove = []
    if exclusive:
        keep = {p.public_key for p in desired}
        remove = [k for k in live_map if k not in keep]
    return upsert, remove


class FileBackend:
    """Peers kept in the wg-quick file and, when the interface runs, on the device."""

    def __init__(self, interface: str, config_dir: str = "/etc/wireguard", backup: bool = False):
        self.interface = interface
        self.path = _files.config_path(config_dir, interface)
        self.config_dir = config_dir
        self.backup = backup

    def apply(self, specs: list[PeerSpec], exclusive: bool, check_mode: bool) -> dict:
        with _files.locked(self.config_dir, self.interface):
            existing = _files.read_config(self.path)
            if existing is None:
                raise WgValueError(
                    f"interface: {self.interface!r} does not exist (no {self.path}); create it with wg_interface first"
                )
            plan = plan_peers(list(existing.peers), specs, exclusive)
            desired = existing.replace(peers=tuple(plan.desired))
            live = _device.read_dump(self.interface)
            changed_in_file = {p.public_key for p in plan.added + plan.updated}
            upsert, remove = live_drift(plan.desired, live, exclusive, changed_in_file) if live else ([], [])
            drift = sorted({p.public_key for p in upsert} - changed_in_file | (set(remove) - set(plan.removed)))
            result = {
                "changed": plan.changed or bool(upsert or remove),
                "peers": plan.summary(),
                "drift": drift,
                "peer_count": len(plan.desired),
                "applied": "none",
                "diff": {
                    "before": render(existing, redact=True),
                    "after": render(desired, redact=True),
                    "before_header": self.path,
                    "after_header": self.path,
                },
            }
            if check_mode or not result["changed"]:
                return result
            if plan.changed:
                backup_file = _files.write_config(self.path, desired, backup=self.backup)
                if backup_file:
                    result["backup_file"] = backup_file
                result["applied"] = "file"
            if live is not None and (upsert or remove):
                _device.apply_peers(self.interface, upsert, remove, live.peer_map())
                added_routes = [p for p in upsert if p.public_key not in live.peer_map() or p in plan.updated]
                _device.add_routes(self.interface, desired, added_routes)
                result["applied"] = "live"
            return result
