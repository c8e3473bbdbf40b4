#!/usr/bin/python
# Copyright: wgfleet.wireguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: wg_interface_info
short_description: Show the WireGuard interfaces running on a host, with their peers' handshakes and traffic
description:
  - Reads every WireGuard interface of the host (every C(NAME.conf) in O(config_dir) and every running device), or
    exactly O(interfaces), from its wg-quick file and its live device (C(wg show dump)).
  - Per peer, its latest handshake and how long ago it was, the bytes received and sent, the endpoint the device
    has now and the one in the file, its label from the file, and whether it is in the file, live, or both.
  - Never changes anything. No private or preshared key is returned (a peer says only whether it has a preshared key).
version_added: 0.2.0
author:
  - wgfleet.wireguard contributors (@wgfleet)
extends_documentation_fragment:
  - wgfleet.wireguard.attributes
  - wgfleet.wireguard.attributes.info_module
options:
  config_dir:
    description: Directory of the wg-quick configuration files.
    type: path
    default: /etc/wireguard
  interfaces:
    description: Only these interfaces (each one is listed, running or not). By default every file and every running device.
    type: list
    elements: str
  recent_handshake:
    description:
      - Seconds within which a handshake counts as recent in each interface's C(counts.recent_handshakes), from 1 to
        604800. WireGuard renews a session's handshake every 2 minutes while it carries traffic; 180 s means the
        peer holds a session now.
    type: int
    default: 180
seealso:
  - module: wgfleet.wireguard.wg_interface
  - module: wgfleet.wireguard.wg_fleet_info
"""

EXAMPLES = r"""
- name: Read this server's interfaces
  wgfleet.wireguard.wg_interface_info:
  register: wg

- name: Peers that hold a session now
  ansible.builtin.debug:
    msg: "{{ wg.interfaces.wg0.peers | selectattr('handshake_age_seconds', 'ne', none)
             | selectattr('handshake_age_seconds', 'le', 180) | map(attribute='name') | list }}"
"""

RETURN = r"""
interfaces:
  description:
    - Per interface, its file (null when it has none), whether it runs, its public key, listen port, addresses,
      its peers and its counts.
    - Each peer has C(public_key), C(name) (the file's label), C(allowed_ips), C(endpoint) (the device's, learned
      or configured), C(configured_endpoint), C(persistent_keepalive), C(has_preshared_key), C(in_file), C(live),
      C(latest_handshake) (Unix time, null when never), C(handshake_age_seconds), C(rx_bytes) and C(tx_bytes).
  returned: always
  type: dict
  sample: {"wg0": {"file": "/etc/wireguard/wg0.conf", "running": true, "listen_port": 51820,
           "public_key": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", "address": ["10.10.0.1/24"],
           "counts": {"peers": 1, "live_only": 0, "file_only": 0, "recent_handshakes": 1, "rx_bytes": 1140,
                      "tx_bytes": 980},
           "peers": [{"public_key": "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=", "name": "alice-laptop",
                      "allowed_ips": ["10.10.0.2/32"], "endpoint": "198.51.100.7:40122", "configured_endpoint": null,
                      "persistent_keepalive": 0, "has_preshared_key": true, "in_file": true, "live": true,
                      "latest_handshake": 1767225600, "handshake_age_seconds": 42, "rx_bytes": 1140,
                      "tx_bytes": 980}]}}
counts:
  description: The host's totals.
  returned: always
  type: dict
  sample: {"interfaces": 2, "running": 2, "peers": 130, "recent_handshakes": 12}
"""

from ..module_utils._hostinfo import DEFAULT_RECENT_HANDSHAKE, interface_info
from ..module_utils._module import WgModule, run_core


def main() -> None:
    module = WgModule(argument_spec={
        "config_dir": {"type": "path", "default": "/etc/wireguard"},
        "interfaces": {"type": "list", "elements": "str"},
        "recent_handshake": {"type": "int", "default": DEFAULT_RECENT_HANDSHAKE},
    }, supports_check_mode=True)
    params = module.params
    run_core(module, lambda: dict(changed=False, **interface_info(params["config_dir"], params["interfaces"],
                                                                  params["recent_handshake"])))


if __name__ == "__main__":
    main()
