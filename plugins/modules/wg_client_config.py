#!/usr/bin/python
# Copyright: wgfleet.wireguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: wg_client_config
short_description: A person's WireGuard client, on the controller - key pair, wg-quick file, QR code
version_added: 0.1.0
description:
  - Run it on the controller (C(delegate_to) V(localhost)). It keeps a client's key pair in O(dest_dir) (generated
    there when missing, so the client's private key never reaches a server) and, with O(address), writes the
    complete wg-quick file the client's user needs, C(<dest_dir>/<name>.conf), and a QR code of it for the
    WireGuard phone apps, C(<dest_dir>/<name>.png).
  - The usual flow is three tasks, see EXAMPLES - this module without O(address) for the client's public key,
    M(wgfleet.wireguard.wg_peer) on the server with O(wgfleet.wireguard.wg_peer#module:address_pool) to let the
    client in and give it an address, then this module again with that address to write the config.
  - Every file is C(0600), in a directory made C(0700). The private key and the preshared key never appear in the
    result, a message or a diff - RV(config) is the file with both replaced by C(**redacted**); the complete file
    is only on disk. Files are rewritten only when their content would change.
author:
  - wgfleet.wireguard contributors (@wgfleet)
extends_documentation_fragment:
  - wgfleet.wireguard.attributes
requirements:
  - The Python library C(segno) on the controller, for O(qr_code).
attributes:
  check_mode:
    support: full
    details: Reports what would be made or rewritten; no key is generated and nothing is written.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  name:
    description:
      - The client's name, used for its file names. wg-quick takes the file's name as the interface name, so it
        must be one (at most 15 letters, digits and C(_=+.-)), for example V(alice-laptop).
    type: str
    required: true
  dest_dir:
    description: Directory on the controller for the client's files (C(NAME.key), C(NAME.psk), C(NAME.conf), C(NAME.png)).
    type: path
    required: true
  address:
    description:
      - The client's tunnel addresses (C(Address)), as M(wgfleet.wireguard.wg_peer) returned them in
        RV(wgfleet.wireguard.wg_peer#module:addresses) for the client's public key. Without it only the keys
        are made.
    type: list
    elements: str
  server_public_key:
    description: The server interface's public key (M(wgfleet.wireguard.wg_interface) returns it). Required with O(address).
    type: str
  endpoint:
    description: Where the client reaches the server, C(host:port) (a public name or address). Required with O(address).
    type: str
  dns:
    description: DNS servers (and search domains) the client uses while the tunnel is up (C(DNS)).
    type: list
    elements: str
    default: []
  allowed_ips:
    description:
      - What the client sends through the tunnel. The default is the full tunnel, everything; for a split tunnel
        give the networks behind the server, for example V([10.10.0.0/24]).
    type: list
    elements: str
    default: [0.0.0.0/0, "::/0"]
  persistent_keepalive:
    description: Seconds between keepalives from the client (keeps NAT mappings open); V(0) turns them off.
    type: int
    default: 25
  mtu:
    description: The client interface's MTU (C(MTU)); left out, wg-quick chooses.
    type: int
  preshared_key:
    description:
      - Keep a preshared key for this client in C(NAME.psk) (made when missing) and put it in the config. Give the
        same key to the server's peer, for example with the C(file) lookup of RV(preshared_key_file) as
        M(wgfleet.wireguard.wg_peer)'s O(wgfleet.wireguard.wg_peer#module:preshared_key), with C(no_log) on
        that task (see EXAMPLES).
    type: bool
    default: true
  qr_code:
    description: Also write the QR code image (PNG) of the config.
    type: bool
    default: true
seealso:
  - module: wgfleet.wireguard.wg_peer
"""

EXAMPLES = r"""
- name: Alice's key pair, made on the controller
  wgfleet.wireguard.wg_client_config:
    name: alice-laptop
    dest_dir: "{{ playbook_dir }}/clients"
  delegate_to: localhost
  register: alice

- name: Let Alice in with the next free address of the part of wg0's subnet Ansible allocates from
  wgfleet.wireguard.wg_peer:
    interface: wg0
    public_key: "{{ alice.public_key }}"
    preshared_key: "{{ lookup('file', alice.preshared_key_file) }}"
    address_pool: [10.10.0.0/25]
    name: alice-laptop
  no_log: true
  register: alice_peer

- name: Alice's wg-quick file and QR code, split tunnel
  wgfleet.wireguard.wg_client_config:
    name: alice-laptop
    dest_dir: "{{ playbook_dir }}/clients"
    address: "{{ alice_peer.addresses[alice.public_key] }}"
    server_public_key: "{{ wg0.public_key }}"
    endpoint: vpn1.example.com:51820
    dns: [10.10.0.1]
    allowed_ips: [10.10.0.0/24]
  delegate_to: localhost
"""

RETURN = r"""
public_key:
  description: The client's public key (for wg_peer). Null in check mode before the key exists.
  returned: always
  type: str
key_file:
  description: Path of the client's private key on the controller (0600).
  returned: always
  type: str
preshared_key_file:
  description: Path of the client's preshared key on the controller (0600).
  returned: when O(preshared_key=true)
  type: str
path:
  description: Path of the client's wg-quick file (0600).
  returned: with O(address)
  type: str
qr_code:
  description: Path of the PNG QR code of the wg-quick file (0600).
  returned: with O(address) and O(qr_code=true)
  type: str
config:
  description: The wg-quick file with its private and preshared keys replaced by C(**redacted**).
  returned: with O(address)
  type: str
changes:
  description: What was made or rewritten - V(key), V(preshared_key), V(config), V(qr_code).
  returned: always
  type: list
  elements: str
"""

from ..module_utils._client import ClientRequest, client_config
from ..module_utils._module import WgModule, run_core


def main():
    module = WgModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "dest_dir": {"type": "path", "required": True},
            "address": {"type": "list", "elements": "str"},
            "server_public_key": {"type": "str"},
            "endpoint": {"type": "str"},
            "dns": {"type": "list", "elements": "str", "default": []},
            "allowed_ips": {"type": "list", "elements": "str", "default": ["0.0.0.0/0", "::/0"]},
            "persistent_keepalive": {"type": "int", "default": 25},
            "mtu": {"type": "int"},
            "preshared_key": {"type": "bool", "default": True, "no_log": False},
            "qr_code": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    request = ClientRequest(**{k: module.params[k] for k in ClientRequest.__dataclass_fields__})
    run_core(module, lambda: client_config(request, module.check_mode))


if __name__ == "__main__":
    main()
