# Private to the wgfleet.wireguard collection: not a public API.
"""The wg_peer ``wgrest`` backend: the same plan as the file backend (``_peers.plan_peers``), applied
through the wgrest API, so the peers live on the device and in wgrest's dumps, not in the wg-quick file."""
from __future__ import annotations

from . import _files
from ._addresses import interface_subnets, parse_pool
from ._errors import WgError, WgValueError
from ._peers import PeerSpec, allocate_addresses, peer_addresses, plan_peers
from ._values import check_ifname, check_positive
from ._wgconf import Interface, Peer, render_peer
from ._wgrest import DEFAULT_API_URL, WgrestClient, WgrestError, needs_recreate, peer_body, peer_from_api

LABEL_WARNING = ("name: wgrest has no field for a peer label; the label of {count} peer(s) was ignored "
                 "(labels are kept by backend=file, in the wg-quick file)")

MAX_TIMEOUT = 3600  # seconds for one request: a wait past an hour is a mistake


class WgrestBackend:
    """Peers of one device, kept by wgrest (and so on the live device). Same surface as FileBackend."""

    def __init__(self, interface: str, api_url: str = DEFAULT_API_URL, api_token: str | None = None,
                 validate_certs: bool = True, timeout: float = 30, address_pool=None,
                 config_dir: str = "/etc/wireguard"):
        self.interface = check_ifname("interface", interface)
        timeout = check_positive("api_timeout", timeout, MAX_TIMEOUT)
        self.client = WgrestClient(api_url, api_token, validate_certs=validate_certs, timeout=timeout)
        # Allocation needs the interface's subnet: from its wg-quick file on this host, else its live addresses.
        self.address_pool = address_pool
        self.config_dir = config_dir

    def read(self) -> list[Peer]:
        try:
            self.client.device(self.interface)
        except WgrestError as exc:
            if exc.code == "device_not_found":
                raise WgValueError(f"interface: {self.interface!r} does not exist on wgrest at {self.client.base}; "
                                   "create it with wg_interface (wgrest cannot create interfaces)") from None
            raise
        return [peer_from_api(p, self.interface) for p in self.client.peers(self.interface)]

    def apply(self, specs: list[PeerSpec], exclusive: bool, check_mode: bool) -> dict:
        for spec in specs:
            if spec.expires:
                raise WgValueError(f"{spec.option('expires')}: backend wgrest has no field to keep an expiry; "
                                   "use backend=file for peers that expire")
        if self.address_pool is None:
            return self._apply(specs, exclusive, check_mode)
        # The file's lock serializes allocating runs on this host (another wg_peer, file or wgrest backend).
        with _files.locked(self.config_dir, self.interface):
            return self._apply(specs, exclusive, check_mode)

    def _pool_source(self) -> Interface:
        """The interface as this host knows it, for its subnets and the file's peers."""
        path = _files.config_path(self.config_dir, self.interface)
        known = _files.read_config(path)
        if known is None:
            from ._device import addresses_and_mtu, link_exists

            if not link_exists(self.interface):
                raise WgValueError(f"address_pool: cannot tell the subnet of interface {self.interface!r}: "
                                   f"no {path} and no such device on this host")
            known = Interface(address=addresses_and_mtu(self.interface)[0])
        return known

    def _apply(self, specs: list[PeerSpec], exclusive: bool, check_mode: bool) -> dict:
        labelled = [s for s in specs if s.name]
        # wgrest cannot hold a label: plan without it, so that a label never reads as a change.
        specs = [PeerSpec(**{**vars(s), "name": None}) for s in specs]
        current = self.read()
        given: dict = {}
        if self.address_pool is not None:
            known = self._pool_source()
            subnets = interface_subnets("address_pool", known.address)
            pool = parse_pool("address_pool", self.address_pool, subnets)
            held = [ip for p in known.peers for ip in p.allowed_ips]
            specs, given = allocate_addresses(current, specs, pool, subnets, held)
        plan = plan_peers(current, specs, exclusive)
        where = f"{self.client.base}/v1/devices/{self.interface}/"
        result = {
            "changed": plan.changed,
            "peers": plan.summary(),
            "drift": [],
            "peer_count": len(plan.desired),
            "applied": "none",
            "diff": {"before": _render_peers(current), "after": _render_peers(plan.desired),
                     "before_header": where, "after_header": where},
            "expired": [],
            "allocated": given,
            "addresses": peer_addresses(plan.desired, specs),
        }
        if labelled:
            result["warnings"] = [LABEL_WARNING.format(count=len(labelled))]
        if check_mode or not plan.changed:
            return result
        old = {p.public_key: p for p in current}
        for key in plan.removed:
            self.client.delete_peer(self.interface, key)
        for peer in plan.updated:
            if needs_recreate(old[peer.public_key], peer):
                self.client.delete_peer(self.interface, peer.public_key)
                self.client.create_peer(self.interface, peer_body(peer))
            else:
                self.client.update_peer(self.interface, peer.public_key, peer_body(peer))
        for peer in plan.added:
            self.client.create_peer(self.interface, peer_body(peer))
        result["applied"] = "api"
        # wgrest's answers echo the request; only a read-back tells what the device holds.
        after = {p.public_key: p for p in self.read()}
        wrong = [p.public_key for p in plan.desired if after.get(p.public_key) != p]
        wrong += [k for k in plan.removed if k in after]
        if wrong:
            raise WgError(f"wgrest at {self.client.base}: device {self.interface!r} does not hold the requested "
                          f"state of peer(s) {', '.join(wrong)} after the change")
        return result


def _render_peers(peers: list[Peer]) -> str:
    lines: list[str] = []
    for peer in peers:
        lines.extend(render_peer(peer, redact=True))
    return "\n".join(lines).lstrip("\n") + ("\n" if lines else "")
