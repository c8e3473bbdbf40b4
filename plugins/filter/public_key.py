# Copyright: wgfleet.wireguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The public_key filter: a WireGuard private key's public key, on the controller (as C(wg pubkey) gives it)."""
from __future__ import annotations

DOCUMENTATION = r"""
name: public_key
short_description: The public key of a WireGuard private key
version_added: 0.2.0
description:
  - Derives the public key of a WireGuard private key (X25519), as C(wg pubkey) does, on the controller.
    No command runs, and the private key is never put on a command line or in a task's output.
  - A value that is not a WireGuard key fails naming the filter, without quoting the value.
options:
  _input:
    description: The private key, 32 bytes in base64.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Check a pinned key against the stored one
  ansible.builtin.assert:
    that: server_interfaces[0].private_key | wgfleet.wireguard.public_key == stored_public_key
"""

RETURN = r"""
_value:
  description: The public key, 32 bytes in base64.
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys
from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgError


def public_key(private_key):
    try:
        return _keys.public_key(_keys.check_key("private_key", private_key, secret=True))
    except (WgError, TypeError, ValueError):
        raise AnsibleFilterError("public_key: the value is not a WireGuard private key (32 bytes in base64)") from None


class FilterModule:
    def filters(self):
        return {"public_key": public_key}
