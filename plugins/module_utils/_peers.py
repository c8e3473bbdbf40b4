# Private to the wgfleet.wireguard collection: not a public API.
"""Peers of one interface: plan a change once, then apply it through a backend.

``plan_peers`` is pure and backend-free: given the peers a backend holds now and
what the user asked for, it says which peers to add, update and remove. The
file backend here applies that to the wg-quick file and the running device; a
REST backend (wgrest) applies the same plan through its API.
"""
from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
from dataclasses import dataclass, field

from . import _device, _files
from ._addresses import Allocator, interface_subnets, parse_pool
from ._errors import WgError, WgValueError, shown
from ._expiry import has_passed, normalize_expiry
from ._keys import check_key
from ._values import check_ifname, check_path
from ._wgconf import PEER_SETTINGS, Interface, Peer, check_unique_allowed_ips, parse, render

# Per-peer options a user sets: every peer setting a module option sets. None means "keep what the peer has".
PEER_OPTIONS = tuple(n for n, s in PEER_SETTINGS.items() if s.option is not None)


class _PeerSpecMethods:
    """What PeerSpec does; its fields are made from the registry (below)."""

    @classmethod
    def from_params(cls, params: dict, where: str = "") -> PeerSpec:
        prefix = f"{where}." if where else ""
        unknown = set(params) - {"public_key", "state", *PEER_OPTIONS}
        if unknown:
            raise WgValueError(f"{prefix}{shown(sorted(map(str, unknown))[0])}: unknown peer option")
        key = params.get("public_key")
        check_key(f"{prefix}public_key", key)
        state = params.get("state") or "present"
        if state not in ("present", "absent"):
            raise WgValueError(f"{prefix}state: {shown(state)} is not present or absent")
        values = {k: params.get(k) for k in ("public_key", *PEER_OPTIONS)}
        expires = normalize_expiry(f"{prefix}expires", values["expires"])
        values["expires"] = "" if values["expires"] == "" else expires
        return cls(**values, state=state, where=where)

    def option(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

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


# One peer as a task asks for it: its public key, its state, and each option of PEER_OPTIONS as given (None:
# not given); ``where`` ("peers[3]") is for messages.
# pylint: disable=invalid-field-call
PeerSpec = dataclasses.make_dataclass("PeerSpec", [
    ("public_key", str),
    ("state", str, field(default="present")),
    *((name, object, field(default=None, repr=not PEER_SETTINGS[name].secret)) for name in PEER_OPTIONS),
    ("where", str, field(default="", repr=False, compare=False)),
], bases=(_PeerSpecMethods,))
# pylint: enable=invalid-field-call
PeerSpec.__module__ = __name__


@dataclass
class PeerPlan:
    desired: list[Peer]
    added: list[Peer] = field(default_factory=list)
    updated: list[Peer] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # Keys asked to be absent: they go from the device too, even when the file never had them.
    absent: set = field(default_factory=set)

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
    """Compare what a backend holds with what was asked; peers keep their order, new ones go last.

    Refuses a result in which two peers share an allowed network: WireGuard would
    give it to one of them, and the other would differ from the file on every run.
    """
    by_key = {p.public_key: p for p in current}
    wanted: dict[str, Peer | None] = {}
    for spec in specs:
        if spec.public_key in wanted:
            raise WgValueError(f"peers: public key {spec.public_key} is listed twice")
        wanted[spec.public_key] = spec.build(by_key.get(spec.public_key)) if spec.state == "present" else None
    plan = PeerPlan(desired=[], absent={k for k, v in wanted.items() if v is None})
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
    check_unique_allowed_ips(plan.desired)
    return plan


def apply_expiry(current: list[Peer], specs: list[PeerSpec], now=None) -> tuple[list[PeerSpec], list[str]]:
    """Turn every peer whose expiry has passed into a revocation (``state: absent``); say which.

    The expiry a spec gives wins over the one the peer carries (``''`` clears it). A
    peer the interface does not hold, given an expiry that has passed, is an error:
    adding it would revoke it at once (a typo in a year, or an inventory entry that
    expired and was revoked before: remove it, or set ``state: absent``).
    """
    by_key = {p.public_key: p for p in current}
    named = set()
    out, expired = [], []
    for spec in specs:
        named.add(spec.public_key)
        held = by_key.get(spec.public_key)
        if spec.state != "present":
            out.append(spec)
            continue
        when = spec.expires if spec.expires is not None else (held.expires if held else None)
        if not has_passed(when or None, now):
            out.append(spec)
        elif held is None:
            raise WgValueError(
                f"{spec.option('expires')}: {when} is in the past, so peer {spec.public_key} would be revoked as "
                "soon as it was added; give a later time (if it expired and was revoked already, remove it from "
                "the list or set state: absent)")
        else:
            out.append(PeerSpec(public_key=spec.public_key, state="absent", where=spec.where))
            expired.append(spec.public_key)
    for peer in current:
        if peer.public_key not in named and has_passed(peer.expires, now):
            out.append(PeerSpec(public_key=peer.public_key, state="absent"))
            expired.append(peer.public_key)
    return out, expired


def allocate_addresses(current: list[Peer], specs: list[PeerSpec], pool, subnets, held=(),
                       option: str = "address_pool") -> tuple[list[PeerSpec], dict]:
    """Give each present peer without ``allowed_ips`` the next free address of each pool network.

    A peer that has an address inside the interface's subnet of a family keeps it
    (so a later run changes nothing); one without gets the lowest free address of
    that family's pool network. ``held``: allowed IPs of peers the interface's file
    does not list (the live device, the API), which are never handed out.
    Returns the specs (allowed IPs filled in) and the addresses given, by public key.
    """
    if not pool:
        return specs, {}
    by_key = {p.public_key: p for p in current}
    taken = [ip for p in current for ip in p.allowed_ips] + list(held)
    taken += [ip for s in specs if s.state == "present" and s.allowed_ips for ip in s.allowed_ips]
    allocator = Allocator(pool, subnets, taken)
    out, given = [], {}
    for spec in specs:
        if spec.state != "present" or spec.allowed_ips is not None:
            out.append(spec)
            continue
        base = list(by_key[spec.public_key].allowed_ips) if spec.public_key in by_key else []
        new = []
        for net in pool:
            subnet = allocator.family_subnet(net.version)
            if not any(_inside(ip, subnet) for ip in base):
                new.append(allocator.next_free(net, option, spec.public_key))
        if new:
            given[spec.public_key] = new
            spec = PeerSpec(**{**vars(spec), "allowed_ips": base + new})
        out.append(spec)
    return out, given


def prepare_specs(existing: Interface, specs: list[PeerSpec], address_pool, live: Interface | None = None,
                  now=None, api_peers=()) -> tuple[list[PeerSpec], dict]:
    """Expiry, then allocation: the specs as plan_peers takes them, and what the result reports of both.

    ``existing`` is the interface's file (its Address lines give the subnets); the
    peers of ``live`` and ``api_peers`` hold their addresses too.
    """
    specs, expired = apply_expiry(list(existing.peers), specs, now)
    pool = ()
    if address_pool is not None:
        subnets = interface_subnets("address_pool", existing.address)
        pool = parse_pool("address_pool", address_pool, subnets)
    held = [ip for p in (live.peers if live else ()) for ip in p.allowed_ips]
    held += [ip for p in api_peers for ip in p.allowed_ips]
    specs, given = allocate_addresses(list(existing.peers), specs, pool,
                                      interface_subnets("address_pool", existing.address), held)
    return specs, {"expired": expired, "allocated": given}


def _inside(cidr: str, subnet) -> bool:
    net = ipaddress.ip_network(cidr, strict=False)
    return subnet is not None and net.version == subnet.version and net.subnet_of(subnet)


def peer_addresses(desired: list[Peer], specs: list[PeerSpec]) -> dict:
    """The allowed IPs of every present peer the run named, by public key (what a client config needs)."""
    named = {s.public_key for s in specs if s.state == "present"}
    return {p.public_key: list(p.allowed_ips) for p in desired if p.public_key in named}


def live_drift(desired: list[Peer], live: Interface, exclusive: bool, changed: set[str],
               removed=(), routes: _device.Routes | None = None) -> tuple[list[Peer], list[str]]:
    """Peers to send to the running device, and live peers to remove.

    A peer goes live when the plan changed it (``changed``) or its live state
    differs from ``desired``. Endpoints are left out of that comparison: WireGuard
    learns them from traffic (roaming), so a live endpoint is no drift. Every key
    in ``removed`` (taken out of the file, or asked to be absent) leaves the device
    at once: a revoked key must not complete another handshake. Other live peers
    that the file does not know are left alone unless ``exclusive``: an
    application may have added them through the API moments ago.

    ``routes`` (the interface's routes, None with Table = off) makes a peer whose
    allowed IPs lack the routes wg-quick would give them drift too: it goes to
    the device as the device has it, and its routes are added again.
    """
    live_map = live.peer_map()
    upsert = []
    for peer in desired:
        current = live_map.get(peer.public_key)
        if peer.public_key in changed or current is None \
                or current != peer.replace(name=None, expires=None, endpoint=current.endpoint):
            upsert.append(peer)
        elif routes is not None and not all(routes.covers(cidr) for cidr in _device.routed_ips(peer)):
            upsert.append(current)
    keep = {p.public_key for p in desired}
    gone = set(removed)
    remove = [k for k in live_map if k not in keep and (exclusive or k in gone)]
    return upsert, remove


@dataclass
class FilePeerPlan:
    """One wg_peer run with the file backend: the file, the device, and how each changes."""

    path: str
    existing: Interface
    desired: Interface
    peers: PeerPlan
    live: Interface | None
    upsert: list = field(default_factory=list)
    remove: list = field(default_factory=list)
    fix_mode: bool = False
    # Allocation and expiry: addresses (by key), allocated (by key), expired (keys).
    extra: dict = field(default_factory=dict)

    @property
    def write_file(self) -> bool:
        return self.peers.changed

    @property
    def live_change(self) -> bool:
        return self.live is not None and bool(self.upsert or self.remove)

    @property
    def changed(self) -> bool:
        return self.write_file or self.fix_mode or self.live_change

    def report(self) -> dict:
        in_file = {p.public_key for p in self.peers.added + self.peers.updated}
        summary = self.peers.summary()
        summary["removed"] += [k for k in self.remove if k not in self.peers.removed and k in self.peers.absent]
        explained = in_file | set(summary["removed"])
        drift = sorted({p.public_key for p in self.upsert} | set(self.remove)) if self.live else []
        return {
            "changed": self.changed,
            "peers": summary,
            "drift": [k for k in drift if k not in explained],
            "peer_count": len(self.desired.peers),
            "changes": (["peers"] if self.write_file else []) + (["mode"] if self.fix_mode else []),
            "applied": "live" if self.live_change else ("file" if self.write_file or self.fix_mode else "none"),
            **self.extra,
        }

    def diff(self) -> dict:
        return {"before": render(self.existing, redact=True), "after": render(self.desired, redact=True),
                "before_header": self.path, "after_header": self.path}


class FileBackend:
    """Peers kept in the wg-quick file and, when the interface runs, on the device."""

    def __init__(self, interface: str, config_dir: str = "/etc/wireguard", backup: bool = False,
                 address_pool=None, now=None):
        self.interface = check_ifname("interface", interface)
        check_path("config_dir", config_dir)
        self.path = _files.config_path(config_dir, interface)
        self.config_dir = config_dir
        self.backup = backup
        # Checked against the interface's subnet once the file is read.
        self.address_pool = address_pool
        self.now = now

    def plan(self, specs: list[PeerSpec], exclusive: bool, original: str | None) -> FilePeerPlan:
        existing = None if original is None else parse(original, source=self.path)
        if existing is None:
            raise WgValueError(
                f"interface: {self.interface!r} does not exist (no file {shown(self.path)} in config_dir); "
                "create it with wg_interface first"
            )
        live = _device.read_dump(self.interface)
        specs, extra = prepare_specs(existing, specs, self.address_pool, live, self.now)
        peers = plan_peers(list(existing.peers), specs, exclusive)
        desired = existing.replace(peers=tuple(peers.desired))
        plan = FilePeerPlan(self.path, existing, desired, peers, live, fix_mode=_files.loose_mode(self.path) is not None)
        plan.extra = {**extra, "addresses": peer_addresses(peers.desired, specs)}
        if live is not None:
            changed = {p.public_key for p in peers.added + peers.updated}
            plan.upsert, plan.remove = live_drift(peers.desired, live, exclusive, changed,
                                                  removed=set(peers.removed) | peers.absent,
                                                  routes=_device.read_routes(self.interface, existing))
        return plan

    def apply(self, specs: list[PeerSpec], exclusive: bool, check_mode: bool) -> dict:
        with _files.locked(self.config_dir, self.interface):
            original = _files.read_raw(self.path)
            plan = self.plan(specs, exclusive, original)
            result = {**plan.report(), "diff": plan.diff()}
            if check_mode or not plan.changed:
                return result
            backup_file = None
            change = _device.LiveChange(self.interface, before={})
            try:
                if plan.write_file:
                    backup_file = _files.write_config(self.path, plan.desired, backup=self.backup)
                elif plan.fix_mode:
                    _files.make_private(self.path)
                if plan.live_change:
                    _device.change_peers(self.interface, plan.desired, plan.upsert, plan.remove, plan.live, change)
            except WgError as exc:
                # Leave the host as it was: the device first (it may be carrying traffic), then the file.
                _device.undo(change)
                if plan.write_file:
                    with contextlib.suppress(OSError, WgError):
                        _files.put_back(self.path, original)
                if backup_file:
                    with contextlib.suppress(OSError):
                        os.unlink(backup_file)
                raise WgError(f"{exc} (the file and the device were put back as they were)") from None
            if backup_file:
                result["backup_file"] = backup_file
            return result
