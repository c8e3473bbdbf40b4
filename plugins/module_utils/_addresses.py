# Private to the wgfleet.wireguard collection: not a public API.
"""Tunnel addresses for peers: the next free address of a pool, pure and backend-free.

A pool is a list of networks inside the interface's subnets (its ``Address``
lines), one per address family at most: ``[10.10.0.0/25, fd10::/121]``. The
inventory gives Ansible one part of each subnet and leaves the rest to the
applications that add peers through wgrest (docs/applications.md), so the two
never hand out the same address even when they allocate at the same moment.

An address is free when no peer's allowed network contains it (the peers of the
file, of the live device and of the API are all passed in as ``held``), it is
not one of the interface's own addresses, and it is not the subnet's network or
broadcast address. The lowest free address goes first, so a run is
deterministic; a peer that has an address keeps it (the caller only asks for
peers that lack one).
"""
from __future__ import annotations

import ipaddress

from ._errors import WgValueError, shown
from ._values import check_text

MAX_POOL = 8
MAX_TEXT = 64


def parse_pool(option: str, values, subnets) -> tuple:
    """``values`` as networks, each inside one of ``subnets`` (``ip_interface`` objects), one per family."""
    if values is None:
        return ()
    if not isinstance(values, (list, tuple)):
        raise WgValueError(f"{option}: {shown(values)} is not a list of networks")
    if not values:
        raise WgValueError(f"{option}: the list is empty; give a network per address family, e.g. [10.10.0.0/25]")
    if len(values) > MAX_POOL:
        raise WgValueError(f"{option}: {len(values)} networks; at most {MAX_POOL}, one per address family")
    pool: list = []
    for item in values:
        check_text(option, item, max_len=MAX_TEXT)
        try:
            net = ipaddress.ip_network(item.strip(" \t"), strict=True)
        except ValueError:
            raise WgValueError(f"{option}: {shown(item)} is not a network (CIDR with no host bits set, "
                               "e.g. 10.10.0.0/25)") from None
        inside = [s for s in subnets if s.version == net.version and net.subnet_of(s.network)]
        if not inside:
            have = ", ".join(str(s.network) for s in subnets) or "none"
            raise WgValueError(f"{option}: {net} is not inside the interface's subnet (its Address lines: {have})")
        if any(p.version == net.version for p in pool):
            raise WgValueError(f"{option}: two IPv{net.version} networks; give one network per address family")
        pool.append(net)
    return tuple(pool)


def interface_subnets(option: str, addresses) -> tuple:
    """An interface's ``Address`` values as ``ip_interface`` objects (address and subnet)."""
    out = []
    for text in addresses or ():
        try:
            out.append(ipaddress.ip_interface(text))
        except ValueError:
            raise WgValueError(f"{option}: the interface address {shown(text)} cannot be read") from None
    return tuple(out)


class Allocator:
    """Hands out the lowest free address of each pool network, never one that is held."""

    def __init__(self, pool, subnets, held):
        self.pool = tuple(pool)
        self.subnets = tuple(subnets)
        self._taken: dict = {4: set(), 6: set()}
        self._wide: list = []
        self._next = {net: 0 for net in self.pool}
        for iface in self.subnets:
            self._taken[iface.version].add(iface.ip)
            net = iface.network
            if net.version == 4 and net.prefixlen < 31:
                self._taken[4].update((net.network_address, net.broadcast_address))
            elif net.version == 6 and net.prefixlen < 127:
                self._taken[6].add(net.network_address)  # the subnet-router anycast address
        for cidr in held:
            self.hold(cidr)

    def hold(self, cidr) -> None:
        net = ipaddress.ip_network(cidr, strict=False)
        if net.num_addresses == 1:
            self._taken[net.version].add(net.network_address)
        else:
            self._wide.append(net)

    def is_free(self, address) -> bool:
        return address not in self._taken[address.version] and \
            not any(address.version == n.version and address in n for n in self._wide)

    def family_subnet(self, version: int):
        return next((s.network for s in self.subnets if s.version == version), None)

    def next_free(self, net, option: str, who: str) -> str:
        """The lowest free address of ``net`` as a host CIDR, now held; an error naming ``option`` when full."""
        size = net.num_addresses
        start = self._next[net]
        base = int(net.network_address)
        while start < size:
            candidate = net.network_address + start
            # A held network (a peer's 10.10.0.0/26, an IPv6 /65) is stepped over at once: one address at a
            # time, an IPv6 pool covered by held networks would take longer than the universe has.
            wide = next((n for n in self._wide if n.version == candidate.version and candidate in n), None)
            if wide is not None:
                start = int(wide.broadcast_address) - base + 1
                continue
            start += 1
            if self.is_free(candidate):
                self._next[net] = start
                self.hold(candidate)
                return f"{candidate}/{candidate.max_prefixlen}"
        self._next[net] = size
        raise WgValueError(f"{option}: no free address left in {net} for peer {who} (every one of its "
                           f"{size} addresses is held or reserved); widen the pool or revoke peers")
