"""The retention policy's choice of snapshots (pure), and its refusal of bad values naming the option."""
from __future__ import annotations

import datetime as dt

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgValueError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._fleet import check_servers
from ansible_collections.wgfleet.wireguard.plugins.module_utils._retention import Policy
from tests.helpers.keys import SERVER_KEY

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.timezone.utc)


def at(days: float, hour: int = 12) -> dt.datetime:
    return (NOW - dt.timedelta(days=days)).replace(hour=hour)


def test_one_a_day_keeps_the_last_of_each_utc_day():
    # Three snapshots on each of the last ten days, at 01:00, 12:00 and 23:00 UTC.
    snaps, n = [], 0
    for day in range(10, 0, -1):
        for hour in (1, 12, 23):
            n += 1
            snaps.append((n, at(day, hour)))
    kept = Policy(keep_days=0, keep_latest=1, daily_days=4).keep(snaps, NOW)
    last_of_day = {sid for sid, when in snaps if when.hour == 23 and when >= NOW - dt.timedelta(days=4)}
    assert kept == last_of_day | {n}
    # The window opens on 11 June at 12:00: the 23:00 snapshots of 11, 12, 13 and 14 June (the latest among them).
    assert sorted(when.day for sid, when in snaps if sid in kept) == [11, 12, 13, 14]


def test_keep_days_and_keep_latest():
    snaps = [(i, at(30 - i)) for i in range(30)]
    assert Policy(keep_days=5, keep_latest=1).keep(snaps, NOW) == set(range(25, 30))
    assert Policy(keep_days=0, keep_latest=3).keep(snaps, NOW) == {27, 28, 29}
    assert Policy(keep_days=100, keep_latest=1).keep(snaps, NOW) == set(range(30))
    # The latest is kept however old it is.
    assert Policy(keep_days=1, keep_latest=1).keep([(1, at(400)), (2, at(300))], NOW) == {2}


@pytest.mark.parametrize(("args", "option"), [
    ({"keep_days": -1}, "keep_days"), ({"keep_days": 36501}, "keep_days"), ({"keep_days": 1.5}, "keep_days"),
    ({"keep_days": True}, "keep_days"), ({"keep_days": "7"}, "keep_days"), ({"keep_days": None}, "keep_days"),
    ({"keep_days": 1, "keep_latest": 0}, "keep_latest"), ({"keep_days": 1, "keep_latest": 10 ** 7}, "keep_latest"),
    ({"keep_days": 1, "daily_days": -2}, "daily_days"), ({"keep_days": 1, "daily_days": float("nan")}, "daily_days"),
])
def test_bad_values_name_the_option(args, option):
    with pytest.raises(WgValueError, match=rf"^{option}: "):
        Policy(**args)


def test_a_key_given_as_a_number_is_refused_without_quoting_it():
    for option in ("keep_days", "keep_latest", "daily_days"):
        with pytest.raises(WgValueError, match=rf"^{option}: .* is not a whole number") as caught:
            Policy(**{"keep_days": 1, option: SERVER_KEY})
        assert SERVER_KEY[:20] not in str(caught.value)


def test_servers_given_as_text_are_refused_without_quoting_a_key():
    with pytest.raises(WgValueError, match=r"^servers: .* is not a list of server ids") as caught:
        check_servers(f"srv1,{SERVER_KEY}")
    assert SERVER_KEY[:20] not in str(caught.value)
