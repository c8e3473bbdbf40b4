#!/usr/bin/python
# Copyright: wgfleet.wireguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: wg_peer
short_description: Manage the peers of a WireGuard interface, in its wg-quick file and live
version_added: 0.1.0
description:
  - Adds, changes and removes peers of an interface made with M(wgfleet.wireguard.wg_interface).
  - With the V(file) backend, peers are written to C(<config_dir>/<interface>.conf) and, when the interface runs,
    applied to the live device with C(wg set) and C(wg addconf), without a restart and without disturbing
    the sessions of other peers.
  - One peer with O(public_key), or many at once with O(peers). A peer option left out keeps the value the
    peer already has; an empty value (V([]), V(''), V(0)) clears it.
  - Live peers that differ from the file (drift) are reported in RV(drift) and brought back in line. Live
    peers that the file does not know are left alone, unless O(exclusive=true).
  - A peer removed (O(state=absent), or not listed with O(exclusive=true)) leaves the running device at once,
    with the routes of its allowed IPs, also when only the device had it; its key cannot complete another
    handshake.
  - Two peers with the same allowed network are refused, naming both, because WireGuard would route it to one of them.
  - If changing the running device fails, the device and the file are put back as they were before the module
    fails.
author:
  - wgfleet.wireguard contributors (@wgfleet)
extends_documentation_fragment:
  - wgfleet.wireguard.attributes
requirements:
  - Python 3.9 or later on the managed host.
  - wireguard-tools (C(wg)) and iproute2 on the managed host.
attributes:
  check_mode:
    support: full
    details: Predicts every change; nothing is written or changed live.
  diff_mode:
    support: full
    details: The file before and after, with every private and preshared key replaced by C(**redacted**).
  idempotent:
    support: full
options:
  interface:
    description: Name of the interface; its file must exist.
    type: str
    required: true
  public_key:
    description: Public key of the peer, base64. Mutually exclusive with O(peers).
    type: str
  state:
    description: Whether the peer given with O(public_key) exists.
    type: str
    choices: [present, absent]
    default: present
  allowed_ips:
    description:
      - Networks routed to the peer (C(AllowedIPs)), IPv4 and IPv6 CIDRs; order and duplicates do not matter.
      - Left out, with O(address_pool), a peer that has no address of the interface's subnet gets the next free one.
    type: list
    elements: str
  expires:
    description:
      - When the peer's access ends, ISO 8601 with a time zone (V(2027-01-31T18:00:00Z), V(2027-01-31T19:00:00+01:00)),
        a date (midnight UTC at its start) or a Unix timestamp. V('') removes the expiry.
      - Kept in the wg-quick file as the peer's C(# Expires =) comment line, in UTC. The first run of this module
        on the interface after that time revokes the peer (from the file and from the running device at once, as
        O(state=absent) does), also when the run does not name it, and lists it in RV(expired); check mode lists
        what would expire.
      - A time already past for a peer the interface does not hold is an error (it would be revoked at once; if it
        expired and was revoked before, remove it from the list or set O(state=absent)).
      - Not with O(backend=wgrest), which has no field to keep it.
      - The database keeps it with the peer (M(wgfleet.wireguard.wg_backup) and wgrest-sync read it from the file;
        schema version 4), so a server rebuilt with M(wgfleet.wireguard.wg_restore) gets its peers' expiries back.
    type: str
  endpoint:
    description: Where the peer is reached, C(host:port); an IPv6 address in brackets, C([2001:db8::1]:51820).
    type: str
  preshared_key:
    description: Preshared key shared with this peer (C(PresharedKey)), base64.
    type: str
  persistent_keepalive:
    description: Seconds between keepalive packets (C(PersistentKeepalive)); V(0) turns them off.
    type: int
  name:
    description:
      - A human label for the peer, kept in the file as a C(# Name =) comment line.
      - With O(backend=wgrest) the label is ignored with a warning; wgrest has no field for it.
    type: str
  peers:
    description:
      - Many peers at once. Mutually exclusive with O(public_key).
    type: list
    elements: dict
    suboptions:
      public_key:
        description: Public key of the peer.
        type: str
        required: true
      state:
        description: Whether the peer exists.
        type: str
        choices: [present, absent]
        default: present
      allowed_ips:
        description: As O(allowed_ips).
        type: list
        elements: str
      endpoint:
        description: As O(endpoint).
        type: str
      preshared_key:
        description: As O(preshared_key).
        type: str
      persistent_keepalive:
        description: As O(persistent_keepalive).
        type: int
      name:
        description: As O(name).
        type: str
      expires:
        description: As O(expires).
        type: str
  address_pool:
    description:
      - Networks to allocate peer addresses from, one per address family, each inside the interface's subnet (its
        C(Address)), for example V([10.10.0.0/25, fd10::/121]).
      - A present peer listed without O(allowed_ips) that has no address in the interface's subnet of a family gets
        the lowest free address of that family's pool network as a host route (C(/32), C(/128)); a peer that has
        one keeps it, so later runs change nothing. Free means held by no peer of the file, of the running device
        or of wgrest (peers applications made through the API), and not the interface's own, network or
        broadcast address.
      - Runs on one host allocate one at a time (the interface file's lock). Applications that add peers through
        wgrest must allocate from another part of the subnet than this pool (see docs/applications.md), so that a
        run and an application never pick the same address at the same moment.
      - The addresses are returned in RV(addresses) and RV(allocated).
    type: list
    elements: str
  exclusive:
    description:
      - V(false) never removes a peer that is not named. V(true) removes every peer of the interface that
        O(peers) (or O(public_key)) does not list, from the file and live; for restores and for inventories
        that own the whole set.
    type: bool
    default: false
  config_dir:
    description:
      - Directory of the wg-quick files. A config file that group or others may read is made C(0600) and
        reported as a change (V(mode) in RV(changes)).
    type: path
    default: /etc/wireguard
  backup:
    description: Keep a copy of the previous file, with a timestamp in its name, mode C(0600).
    type: bool
    default: false
  backend:
    description:
      - V(file) manages the wg-quick file and the live device.
      - V(wgrest) manages the peers through the wgrest REST API at O(api_url).
    type: str
    choices: [file, wgrest]
    default: file
  api_url:
    description: Base URL of the wgrest API, with O(backend=wgrest).
    type: str
    default: http://127.0.0.1:51822
  api_token:
    description: Bearer token of the wgrest API, with O(backend=wgrest).
    type: str
  validate_certs:
    description: Whether to check the TLS certificate of O(api_url).
    type: bool
    default: true
  api_timeout:
    description: Seconds to wait for each wgrest request, with O(backend=wgrest); from 1 to 3600.
    type: int
    default: 30
seealso:
  - module: wgfleet.wireguard.wg_interface
"""

EXAMPLES = r"""
- name: Let a laptop in through wg0
  wgfleet.wireguard.wg_peer:
    interface: wg0
    public_key: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
    allowed_ips: [10.10.0.2/32]
    name: alice-laptop

- name: Own the whole peer set of wg0 from the inventory (peers not listed are removed)
  wgfleet.wireguard.wg_peer:
    interface: wg0
    peers: "{{ wg0_peers }}"
    exclusive: true
  vars:
    wg0_peers:
      - public_key: TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=
        allowed_ips: [10.10.0.3/32]
        persistent_keepalive: 25
      - public_key: HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=
        allowed_ips: [10.10.0.4/32, fd10::4/128]
        endpoint: "[2001:db8::4]:51820"

- name: Give two laptops the next free addresses of the part of wg0's subnet Ansible allocates from
  wgfleet.wireguard.wg_peer:
    interface: wg0
    address_pool: [10.10.0.0/25]
    peers:
      - public_key: TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=
        name: bob-laptop
      - public_key: HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=
        name: carol-laptop
        expires: "2035-01-31T18:00:00Z"
  register: laptops

- name: Bob's address (kept on every later run)
  ansible.builtin.debug:
    msg: "{{ laptops.addresses['TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0='] }}"

- name: Remove a peer
  wgfleet.wireguard.wg_peer:
    interface: wg0
    public_key: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
    state: absent
"""

RETURN = r"""
peers:
  description: Public keys of the peers added, updated and removed (in the file or live).
  returned: always
  type: dict
  sample: {added: [xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=], updated: [], removed: []}
drift:
  description:
    - Public keys of live peers that differed from the file (or were unknown to it, with O(exclusive=true)), or
      whose allowed IPs lacked the routes wg-quick gives them (in the interface's table), and were brought back
      in line. Always empty with O(backend=wgrest), where the API is the live state.
  returned: always
  type: list
  elements: str
peer_count:
  description: Number of peers of the interface after the change.
  returned: always
  type: int
changes:
  description:
    - What changed in the file; V(peers) when its peers changed, V(mode) when it was made C(0600) because group
      or others could read it.
  returned: with O(backend=file)
  type: list
  elements: str
applied:
  description:
    - Where the change went (in check mode, where it would go); V(none), V(file) (the interface is down), V(live) (file and running device)
      or V(api) (through wgrest).
  returned: always
  type: str
addresses:
  description: The allowed IPs of every present peer the task listed, by public key, after the change.
  returned: always
  type: dict
  sample: {TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=: [10.10.0.2/32, "fd10::2/128"]}
allocated:
  description: The addresses this run gave out from O(address_pool), by public key (in check mode, would give).
  returned: always
  type: dict
  sample: {TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=: [10.10.0.2/32, "fd10::2/128"]}
expired:
  description: Public keys of the peers revoked because their O(expires) had passed (in check mode, would be).
  returned: always
  type: list
  elements: str
backup_file:
  description: Path of the copy of the previous file.
  returned: when O(backup=true) and the file changed
  type: str
"""

from ..module_utils._module import WgModule, run_core
from ..module_utils._peers import PEER_OPTIONS, FileBackend, PeerSpec
from ..module_utils._wgconf import PEER_SETTINGS, option_specs

PEER_SPEC = {
    "public_key": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    **option_specs(PEER_SETTINGS),
}


def make_backend(params):
    if params["backend"] == "wgrest":
        from ..module_utils._wgrest_backend import WgrestBackend

        return WgrestBackend(
            params["interface"],
            api_url=params["api_url"],
            api_token=params["api_token"],
            validate_certs=params["validate_certs"],
            timeout=params["api_timeout"],
            address_pool=params["address_pool"],
            config_dir=params["config_dir"],
        )
    return FileBackend(params["interface"], config_dir=params["config_dir"], backup=params["backup"],
                       address_pool=params["address_pool"])


def main():
    module = WgModule(
        argument_spec={
            "interface": {"type": "str", "required": True},
            **{k: v for k, v in PEER_SPEC.items() if k != "public_key"},
            "public_key": {"type": "str"},
            "peers": {"type": "list", "elements": "dict", "options": PEER_SPEC},
            "exclusive": {"type": "bool", "default": False},
            "address_pool": {"type": "list", "elements": "str"},
            "config_dir": {"type": "path", "default": "/etc/wireguard"},
            "backup": {"type": "bool", "default": False},
            "backend": {"type": "str", "default": "file", "choices": ["file", "wgrest"]},
            "api_url": {"type": "str", "default": "http://127.0.0.1:51822"},
            "api_token": {"type": "str", "no_log": True},
            "validate_certs": {"type": "bool", "default": True},
            "api_timeout": {"type": "int", "default": 30},
        },
        mutually_exclusive=[("public_key", "peers")],
        required_one_of=[("public_key", "peers")],
        supports_check_mode=True,
    )
    params = module.params

    def action():
        if params["peers"] is not None:
            specs = [PeerSpec.from_params(p, where=f"peers[{i}]") for i, p in enumerate(params["peers"])]
        else:
            one = {k: params[k] for k in ("public_key", "state", *PEER_OPTIONS)}
            specs = [PeerSpec.from_params(one)]
        return make_backend(params).apply(specs, params["exclusive"], module.check_mode)

    run_core(module, action)


if __name__ == "__main__":
    main()
