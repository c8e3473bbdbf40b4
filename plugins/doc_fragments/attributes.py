# Copyright: wgfleet.wireguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # The meaning of each attribute; modules say how far they support it.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
"""

    # An _info module: reads only, so check mode is full and diff mode does not apply.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: Reads only; check mode runs it as usual.
  diff_mode:
    support: N/A
    details: Reads only; there is never a difference to show.
  idempotent:
    support: full
    details: Never changes anything and always reports C(changed=false).
"""
