"""Live devices as data: a source for ``_backup.capture`` that answers from memory what ``wg show`` or
wgrest would have answered (pure tests of the capture rule, and the fleet benchmark's prepared states)."""
from __future__ import annotations


class LiveState:
    def __init__(self, devices: dict):
        self.devices = devices  # interface name -> Interface as a device shows it (key, port, fwmark, peers, link)

    def names(self) -> list:
        return list(self.devices)

    def read(self, name: str):
        return self.devices.get(name)
