# Private to the wgfleet.wireguard collection: not a public API.
"""The Ansible side shared by every module: run the core, turn its errors into fail_json."""
from __future__ import annotations

import sys
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.errors import NoLogError

from ._errors import (
    WgError,
    describe_unexpected,
    key_shaped,
    redact_secrets,
    safe_message,
    scrub_keys,
    secret_guard,
)


class WgModule(AnsibleModule):
    """AnsibleModule whose argument errors quote no key and no huge value.

    Ansible's own checks (types, choices) quote the value they refuse as given: ``mtu`` given a private key
    failed quoting the key, a 1 MB string made a 1 MB message. While the arguments are checked, a failure's
    message goes through :func:`_errors.safe_message`.
    """

    _checking_arguments = False

    def __init__(self, *args, **kwargs):
        self._checking_arguments = True
        try:
            super().__init__(*args, **kwargs)
        finally:
            self._checking_arguments = False

    def _load_params(self):
        super()._load_params()
        _shorten_long_numbers(self.params, self.argument_spec)
        # Ansible echoes the arguments (``invocation``, its syslog line) hiding only no_log options: a key given by
        # mistake to an option that holds none (a path, a label, a hook) is hidden as well, wherever it occurs.
        self.no_log_values.update(_misplaced_keys(self.params, self.argument_spec))

    def _log_invocation(self):
        # Ansible makes an int of any length from text ('1' * 1_000_000); Python writes none of more than 4300
        # digits, so logging it (here) or returning it (``invocation``) raised a traceback.
        for where, value in _numbers(self.params):
            if value.bit_length() > 64:
                _clear(self.params, where)
                self.fail_json(msg=f"{where}: a number of {value.bit_length()} bits is out of range")
        super()._log_invocation()

    def fail_json(self, msg, **kwargs):
        if self._checking_arguments:
            msg = safe_message(self._named_argument_error(msg))
        super().fail_json(msg=msg, **kwargs)

    def _named_argument_error(self, msg: str) -> str:
        """Ansible reports the first of its argument errors. For a list of dicts given as text (``peers: "x"``),
        that is its no_log pass's "dictionary requested, ...", which names no option; the next one does."""
        result = getattr(self, "validation_result", None)
        errors = list(result.errors) if result is not None else []
        if errors and isinstance(errors[0], NoLogError) and str(errors[0]) == msg:
            return next((str(e) for e in errors if not isinstance(e, NoLogError)), msg)
        return msg


# Python reads no int of more digits from text (``sys.get_int_max_str_digits``); Ansible's int check goes through
# Decimal, which takes time in the square of the length: a 1 MB string of digits kept the host's CPU for 49 s.
NUMBER_TEXT_MAX = 4300


def _shorten_long_numbers(params: dict, spec: dict) -> None:
    """Put, in place of a text of more than NUMBER_TEXT_MAX characters given to an int option (or suboption), a short
    text saying what it was: Ansible's check then refuses it at once, naming the option and quoting no part of it."""
    for name, option in spec.items():
        for given in (name, *option.get("aliases", ())):
            value = params.get(given) if isinstance(params, dict) else None
            if option.get("type") == "int" and isinstance(value, str) and len(value) > NUMBER_TEXT_MAX:
                params[given] = f"<a text of {len(value)} characters>"
            elif option.get("options") and isinstance(value, (list, dict)):
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, dict):
                        _shorten_long_numbers(item, option["options"])


def _misplaced_keys(params: dict, spec: dict) -> set:
    """The key-shaped text in the options (and suboptions) of ``params`` that hold no key: all but no_log options,
    whose values Ansible hides, and those of public keys, which are not secret."""
    found: set = set()
    for name, value in params.items() if isinstance(params, dict) else ():
        option = spec.get(name) or {}
        if name.startswith("_ansible_") or name.endswith("public_key") or option.get("no_log"):
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                found.update(key_shaped(item))
            elif isinstance(item, dict):
                found |= _misplaced_keys(item, option.get("options") or {})
    return found


def _numbers(params: dict, prefix: str = ""):
    """(option, value) of every int among ``params`` and the dicts of their lists (suboptions)."""
    for name, value in params.items():
        if isinstance(value, int) and not isinstance(value, bool):
            yield f"{prefix}{name}", value
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    yield from _numbers(item, f"{prefix}{name}[{i}].")


def _clear(params: dict, where: str) -> None:
    """Take the value at ``where`` (as :func:`_numbers` names it) out of ``params``."""
    *path, last = where.split(".")
    for step in path:
        name, index = step[:-1].split("[")
        params = params[name][int(index)]
    params[last] = None


def run_core(module, action, operation: str | None = None) -> None:
    """Call ``action()`` (the core's work) and exit the module with its result.

    A WgError is the user's to act on: its message goes out as is, with no
    traceback. Anything else is a bug: the message says what failed and where,
    the traceback (keys hidden) goes to ``exception``. The net under both:
    every secret key the run handled (given, read from a file or the device,
    generated) is taken out of whatever leaves here, and Ansible is told to
    mask it too.
    """
    operation = operation or f"running {module_name(module, sys._getframe(1))}"
    with secret_guard() as secrets:
        failure = None
        try:
            result = action()
        except WgError as exc:
            failure = {"msg": str(exc)}
        except Exception as exc:
            failure = {"msg": describe_unexpected(exc, operation), "exception": scrub_keys(traceback.format_exc())}
        if failure is not None:
            # Out of the except: failing inside it, Ansible adds the traceback being handled (at -vvv) as it is,
            # with the text of every exception chained to it (an OSError quoting a path with a key in it).
            _leave(module, secrets, failed=True, **failure)
        if not module._diff:
            result.pop("diff", None)
        _leave(module, secrets, failed=False, **result)


def _leave(module, secrets: set, failed: bool, **result) -> None:
    module.no_log_values.update(secrets)
    result = redact_secrets(result, secrets)
    if failed:
        module.fail_json(**result)
    module.exit_json(**result)


def module_name(module, caller) -> str:
    """The name of the module being run, for messages.

    Ansible's controller sends it (``module._name``), but not always: without it
    AnsibleModule names the file it was defined in, ``basic.py``. Then the name
    is that of the module file that called :func:`run_core` (AnsiballZ runs it
    as ``__main__`` with its dotted name in ``__spec__``).
    """
    name = getattr(module, "_name", None) or ""
    if name and not name.endswith(".py"):
        return name
    spec = caller.f_globals.get("__spec__")
    dotted = getattr(spec, "name", None) or caller.f_globals.get("_module_fqn") or ""
    if not dotted or dotted == "__main__":
        dotted = caller.f_globals.get("__file__", "") or ""
        dotted = dotted.rsplit("/", 1)[-1].removesuffix(".py") if dotted else ""
    return dotted.rsplit(".", 1)[-1] or name or "the module"
