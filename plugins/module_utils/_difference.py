# Private to the wgfleet.wireguard collection: not a public API.
"""One comparison for a module's answer: what differs gives ``changed``, the list of changes and the diff.

After community.docker's DifferenceTracker: each setting is compared once, with
the rule that says when two values mean the same (addresses in another order,
say); the plan takes the value to write from the same call, so that a setting
reported unchanged is also never rewritten.
"""
from __future__ import annotations

from ._wgconf import INTERFACE_SETTINGS

_UNORDERED = frozenset(n for n, s in INTERFACE_SETTINGS.items() if s.unordered)


def same_value(setting: str, before, after) -> bool:
    """Whether two values of ``setting`` mean the same. Settings whose order means nothing (addresses) compare
    as sets: the order in the file is kept, but reordering is no change."""
    if setting in _UNORDERED:
        return sorted(before or ()) == sorted(after or ())
    return before == after


class DifferenceTracker:
    def __init__(self):
        self._items: list[tuple[str, object, object]] = []

    def compare(self, setting: str, before, after):
        """Record ``setting`` when it differs; return the value to keep (``before`` when they mean the same)."""
        if same_value(setting, before, after):
            return before
        self._items.append((setting, before, after))
        return after

    def add(self, setting: str, before=None, after=None) -> None:
        """Record a change that is not a setting's value (a new file, a file mode, peers written)."""
        self._items.append((setting, before, after))

    @property
    def changed(self) -> bool:
        return bool(self._items)

    def names(self) -> list[str]:
        return sorted({name for name, _b, _a in self._items}, key=lambda n: (n != "file", n))

    def __contains__(self, setting: str) -> bool:
        return any(name == setting for name, _b, _a in self._items)
