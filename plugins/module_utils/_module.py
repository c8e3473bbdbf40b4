# Private to the wgfleet.wireguard collection: not a public API.
"""The Ansible side shared by every module: run the core, turn its errors into fail_json."""
from __future__ import annotations

import traceback

from ansible.module_utils.basic import missing_required_lib

from ._errors import WgError
from ._keys import CRYPTOGRAPHY_IMPORT_ERROR, HAS_CRYPTOGRAPHY


def run_core(module, action) -> None:
    """Call ``action()`` (the core's work) and exit the module with its result.

    A WgError is the user's to act on: its message goes out as is (it never
    carries a key). Anything else is a bug: the traceback goes to ``exception``.
    """
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(CRYPTOGRAPHY_IMPORT_ERROR))
    try:
        result = action()
    except WgError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:
        module.fail_json(msg=f"unexpected error: {type(exc).__name__}", exception=traceback.format_exc())
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)
