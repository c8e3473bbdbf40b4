# Private to the wgfleet.wireguard collection: not a public API.
"""The pure planning of a save: peer positions that keep as many stored rows as the order allows.

No database: _store.py reads the stored rows, asks this module what to write, and writes it.
"""
from __future__ import annotations

# Gaps between stored peer positions, so a peer inserted between two others takes the middle.
POSITION_STEP = 1 << 20


def _longest_increasing(values: list) -> set[int]:
    """Indices of a longest strictly increasing run (not necessarily contiguous) of the non-None ``values``."""
    import bisect

    tails: list[int] = []  # tails[k]: index ending the best run of length k+1
    tail_values: list[int] = []
    before: dict[int, int | None] = {}
    for index, value in enumerate(values):
        if value is None:
            continue
        k = bisect.bisect_left(tail_values, value)
        before[index] = tails[k - 1] if k else None
        if k == len(tails):
            tails.append(index)
            tail_values.append(value)
        else:
            tails[k] = index
            tail_values[k] = value
    keep = set()
    index = tails[-1] if tails else None
    while index is not None:
        keep.add(index)
        index = before[index]
    return keep


def assign_positions(peers, stored: dict[str, int]) -> list[int]:
    """Positions for ``peers`` (in order) that keep as many stored positions as the order allows.

    The peers whose stored positions are already in order (a longest increasing
    run) keep them, hence their rows; the others (new, moved) take numbers in
    the gaps between those. Appending, removing or editing a peer rewrites no
    other peer's row.
    """
    olds = [stored.get(p.public_key) for p in peers]
    keep = _longest_increasing(olds)
    count = len(olds)
    out: list[int] = [0] * count
    prev = -1
    i = 0
    while i < count:
        if i in keep:
            out[i] = prev = olds[i]
            i += 1
            continue
        j = i
        while j < count and j not in keep:
            j += 1
        # Too little room before the next kept peer: that one moves too.
        while j < count and olds[j] - prev - 1 < j - i:
            keep.discard(j)
            while j < count and j not in keep:
                j += 1
        step = POSITION_STEP if j >= count else (olds[j] - prev) // (j - i + 1)
        for m in range(i, j):
            out[m] = prev = prev + step
        i = j
    return out
