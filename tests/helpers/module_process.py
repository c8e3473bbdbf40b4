"""Module code run inside the test process as Ansible runs it in a process of its own."""
from __future__ import annotations

import contextlib

from ansible.module_utils._internal import _traceback


@contextlib.contextmanager
def module_tracebacks():
    """For one in-process module run, whether its failure carries a traceback is decided as on a managed host: from
    this run's ``_ansible_tracebacks_for``.

    ansible-core keeps that decision from the first module arguments of the process, and its controller code, once
    imported (a filter plugin's test imports it), replaces the module side's decision for the whole process.
    """
    controller_or_module = _traceback._is_traceback_enabled
    _traceback._is_traceback_enabled = _traceback._is_module_traceback_enabled
    _traceback._module_tracebacks_enabled_events = None
    try:
        yield
    finally:
        _traceback._is_traceback_enabled = controller_or_module
        _traceback._module_tracebacks_enabled_events = None
