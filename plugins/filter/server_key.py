# Copyright: wgfleet.wireguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The server_key filter: one server's store encryption key, derived on the controller from the fleet's master."""
from __future__ import annotations

DOCUMENTATION = r"""
name: server_key
short_description: One server's store encryption key, derived from the fleet's master key
version_added: 0.2.0
description:
  - Derives the encryption key under which one server's state is sealed in the fleet's database, from the
    fleet's master key (HKDF-SHA256 with the server id and a generation in the info).
  - Run it on the controller only. The master key opens every server's state and never leaves the controller;
    each server is given only its own derived key (C(stack_sync_encryption_key), C(wg_backup), C(wg_restore)).
  - Bumping O(generation) gives the server a new key without touching any other server's (after that server
    was compromised; see docs/runbooks.md).
options:
  _input:
    description: The fleet's master key, 32 bytes in base64 (C(head -c 32 /dev/urandom | base64)).
    type: str
    required: true
  server_id:
    description: The server id whose key to derive (C(stack_sync_server_id), by default the inventory name).
    type: str
    required: true
  generation:
    description: The key generation of that server, from 1.
    type: int
    default: 1
"""

EXAMPLES = r"""
- name: Give wgrest-sync this server's own key only
  ansible.builtin.set_fact:
    stack_sync_encryption_key: "{{ wgfleet_master_key | wgfleet.wireguard.server_key(inventory_hostname) }}"
  no_log: true
"""

RETURN = r"""
_value:
  description: The server's encryption key, 32 bytes in base64.
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import derive_server_key


def server_key(master_key, server_id, generation=1):
    try:
        # ASCII digits only: str.isdigit() is also true of '²', which int() refuses.
        return derive_server_key(master_key, server_id, int(generation) if isinstance(generation, str)
                                 and generation.isascii() and generation.isdigit() else generation)
    except WgError as exc:
        # The message names the option and never quotes a key.
        raise AnsibleFilterError(f"server_key: {exc}") from None


class FilterModule:
    def filters(self):
        return {"server_key": server_key}
