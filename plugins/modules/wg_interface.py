#!/usr/bin/python
# Copyright: wgfleet.wireguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: wg_interface
short_description: Manage a WireGuard interface's settings, its wg-quick file and its live device
version_added: 0.1.0
description:
  - Writes the C([Interface]) section of C(<config_dir>/<name>.conf), the file that C(wg-quick) and
    C(wg-quick@.service) read, and brings the live interface in line with it.
  - Owns the interface settings only. The peers in the file are kept as they are; manage them with
    M(wgfleet.wireguard.wg_peer).
  - A setting left out keeps the value the file already has. To clear one, give an empty list
    (O(address), O(dns), hooks), C(0) (O(mtu), O(fwmark), O(listen_port)) or C(auto) (O(table)).
  - Changes to the private key, listen port or fwmark are applied to the running device without a
    restart. Changes to addresses, MTU, DNS, table or hooks restart this interface alone (C(wg-quick down)
    with the old file, then C(wg-quick up) with the new one); peers that exist only on the running device
    are written to the file first so that the restart keeps them.
  - After bringing the interface up, the module checks that it runs (the link is up, C(wg show) answers, the
    public key is the file's) and fails clearly otherwise. Before starting an interface again it waits until
    the previous C(wireguard-go) of that name has exited.
  - If any step fails, the previous file is put back byte for byte (and the previous interface brought up
    again, or its live settings restored) before the module fails.
  - Every value is checked against what its key may hold before anything is written; a value with a line
    break, a control character or C(#) (where wg-quick cuts a line) is refused, naming the option.
  - Live settings that differ from the file (drift) are reported in RV(drift) and brought back in line.
author:
  - wgfleet.wireguard contributors (@wgfleet)
extends_documentation_fragment:
  - wgfleet.wireguard.attributes
requirements:
  - Python 3.9 or later on the managed host.
  - wireguard-tools (C(wg), C(wg-quick)) and iproute2 on the managed host.
  - C(wireguard-go) when the kernel has no WireGuard module.
  - Optional, the Python library C(cryptography) 3.3 or later (the distributions' packages, such as Debian's
    C(python3-cryptography), will do); without it, keys are made and derived with C(wg genkey) and C(wg pubkey).
attributes:
  check_mode:
    support: full
    details: Predicts every change; no file is written, no key generated, nothing changed live.
  diff_mode:
    support: full
    details: The file before and after, with the private key replaced by C(**redacted**).
  idempotent:
    support: full
options:
  name:
    description:
      - Name of the interface, also the file name C(<name>.conf). Linux interface name rules, 1 to 15 characters.
    type: str
    required: true
  state:
    description:
      - V(present) writes the file (and brings the interface up with O(up=true)).
      - V(absent) brings the interface down and removes the file.
    type: str
    choices: [present, absent]
    default: present
  address:
    description: Addresses of the interface with their prefix, IPv4 and IPv6 (C(Address)). The first is the primary.
    type: list
    elements: str
  listen_port:
    description: UDP port the interface listens on (C(ListenPort)). V(0) lets WireGuard pick one.
    type: int
  private_key:
    description:
      - Private key of the interface (C(PrivateKey)), base64.
      - Left out, the key already in the file is kept, else the key of the running device, else a new one is
        generated. An existing key is only ever replaced by a key given here.
    type: str
  mtu:
    description: MTU of the interface (C(MTU)). V(0) leaves the choice to wg-quick.
    type: int
  dns:
    description: DNS servers and search domains set while the interface is up (C(DNS)); needs resolvconf.
    type: list
    elements: str
  table:
    description: Routing table for the peers' allowed IPs (C(Table)); V(off), V(auto), a number or a name.
    type: str
  fwmark:
    description: Firewall mark of outgoing packets (C(FwMark)). V(0) turns it off.
    type: int
  pre_up:
    description: Commands run before the interface comes up (C(PreUp)), in order. C(%i) is the interface name.
    type: list
    elements: str
  post_up:
    description: Commands run after the interface came up (C(PostUp)), in order.
    type: list
    elements: str
  pre_down:
    description: Commands run before the interface goes down (C(PreDown)), in order.
    type: list
    elements: str
  post_down:
    description: Commands run after the interface went down (C(PostDown)), in order.
    type: list
    elements: str
  config_dir:
    description:
      - Directory of the wg-quick files. Created with mode C(0700) when missing; an existing directory keeps
        its mode.
      - A config file that group or others may read is made C(0600) and reported as a change (V(mode) in
        RV(changes)).
    type: path
    default: /etc/wireguard
  api_peers_dir:
    description:
      - wgrest's own config directory (where wgrest dumps each device), on a host where applications add peers
        through wgrest.
      - When set, a C(PostUp) command is added to O(post_up) (or to the file's C(PostUp) lines when O(post_up)
        is left out) that, each time the interface starts, adds back the peers of wgrest's dump
        C(<api_peers_dir>/<name>.conf) that the file does not have. Peers in the file keep the file's settings.
      - Must not be O(config_dir), where wgrest would rewrite the wg-quick file and drop Address, DNS, MTU, Table
        and the hooks.
    type: path
  up:
    description:
      - Whether the live interface runs. V(true) brings it up (and in line), V(false) brings it down.
    type: bool
    default: true
  implementation:
    description:
      - V(auto) uses the kernel module where the kernel has it and C(wireguard-go) where it does not.
      - V(kernel) fails when the kernel has no WireGuard module.
      - V(userspace) requires C(wireguard-go) and a kernel without the module (wg-quick always prefers the module).
    type: str
    choices: [auto, kernel, userspace]
    default: auto
  backup:
    description: Keep a copy of the previous file, with a timestamp in its name, mode C(0600).
    type: bool
    default: false
notes:
  - Comments in the file other than the peers' C(# Name =) labels and C(# Expires =) lines are not kept when the module rewrites it.
seealso:
  - module: wgfleet.wireguard.wg_peer
  - name: wg-quick(8)
    description: The reference for the file format and for bringing an interface up and down.
    link: https://man7.org/linux/man-pages/man8/wg-quick.8.html
"""

EXAMPLES = r"""
- name: Run wg0 as the VPN server interface
  wgfleet.wireguard.wg_interface:
    name: wg0
    address: [10.10.0.1/24]
    listen_port: 51820
    post_up:
      - iptables -A FORWARD -i %i -j ACCEPT
    post_down:
      - iptables -D FORWARD -i %i -j ACCEPT
  register: wg0

- name: Show the server's public key for clients
  ansible.builtin.debug:
    msg: "{{ wg0.public_key }}"

- name: On a host where applications add peers through wgrest, give wg0 those peers back whenever it starts
  wgfleet.wireguard.wg_interface:
    name: wg0
    api_peers_dir: /var/lib/wgrest/wireguard

- name: Write wg1's file but leave the interface down
  wgfleet.wireguard.wg_interface:
    name: wg1
    address: [10.11.0.1/24]
    listen_port: 51821
    up: false

- name: Remove wg1
  wgfleet.wireguard.wg_interface:
    name: wg1
    state: absent
"""

RETURN = r"""
name:
  description: Name of the interface.
  returned: always
  type: str
  sample: wg0
public_key:
  description: Public key of the interface; null in check mode when a key would be generated.
  returned: always
  type: str
  sample: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
private_key_source:
  description: Where the private key came from; V(given), V(file), V(device) or V(generated).
  returned: when O(state=present)
  type: str
changes:
  description:
    - Settings of the file that changed; V(file) when the file is new, V(mode) when its mode was made C(0600),
      V(peers) when peers that existed only live were written to it before a restart.
  returned: always
  type: list
  elements: str
  sample: [address, mtu]
drift:
  description:
    - Settings of the running interface that differed from the file and were brought back in line; V(routes) when
      peers of the file lacked the routes wg-quick gives them at start (a start cut short), added live.
  returned: when O(state=present)
  type: list
  elements: str
applied:
  description: How the change reached the host; V(none), V(live), V(restart), V(up) or V(down).
  returned: always
  type: str
  sample: restart
implementation:
  description: V(kernel) or V(userspace) (wireguard-go), for an interface that was brought up.
  returned: when the interface was brought up or restarted
  type: str
preserved_peers:
  description: Public keys of peers that existed only on the running device and were written to the file before a restart.
  returned: when O(state=present)
  type: list
  elements: str
backup_file:
  description: Path of the copy of the previous file.
  returned: when O(backup=true) and the file changed
  type: str
"""

from ..module_utils._interface import InterfaceRequest, ensure
from ..module_utils._module import WgModule, run_core
from ..module_utils._wgconf import INTERFACE_SETTINGS, option_specs

SETTING_OPTIONS = option_specs(INTERFACE_SETTINGS)


def main():
    module = WgModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            **SETTING_OPTIONS,
            "config_dir": {"type": "path", "default": "/etc/wireguard"},
            "up": {"type": "bool", "default": True},
            "implementation": {"type": "str", "default": "auto", "choices": ["auto", "kernel", "userspace"]},
            "backup": {"type": "bool", "default": False},
            "api_peers_dir": {"type": "path"},
        },
        supports_check_mode=True,
    )
    params = module.params

    def action():
        request = InterfaceRequest(
            name=params["name"],
            state=params["state"],
            config_dir=params["config_dir"],
            up=params["up"],
            implementation=params["implementation"],
            backup=params["backup"],
            settings={option: params[option] for option in SETTING_OPTIONS},
            api_peers_dir=params["api_peers_dir"],
        )
        return ensure(request, module.check_mode)

    run_core(module, action)


if __name__ == "__main__":
    main()
