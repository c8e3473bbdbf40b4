"""The comment lines of a [Peer] section that carry a setting (``# Name = ``, ``# Expires = ``), as the parser reads them.

Chosen behaviour (wg-quick ignores every comment; these lines are the collection's own): a comment line is read
as keys are, spaces around its ``=`` optional and its key case-insensitive, so ``# Name=x`` is the label ``x``;
the value ends at the end of the line (a label may hold ``=`` and ``#``) and is trimmed of bash's spaces. An
expiry is read only in the canonical form the renderer writes: a hand-written ``# Expires = 30`` is refused,
not read as the Unix time 30 (long past, the peer would be revoked).
"""
from __future__ import annotations

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgValueError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer, parse, render
from tests.helpers.keys import PEER_A, SERVER_KEY


def peer_of(*comment_lines: str) -> Peer:
    body = "\n".join(comment_lines)
    return parse(f"[Interface]\nPrivateKey = {SERVER_KEY}\n\n[Peer]\n{body}\nPublicKey = {PEER_A}\n").peers[0]


@pytest.mark.parametrize("line", ["# Name = alice", "# Name=alice", "# Name   =alice", "# name = alice",
                                  "# NAME =\talice \t", "\t# Name = alice\r", "# Name =   alice   "])
def test_a_label_line_is_read_with_or_without_spaces_around_its_equals(line):
    assert peer_of(line).name == "alice"


@pytest.mark.parametrize("line", ["#Name = alice", "# Names = alice", "# Name alice", "# Label = alice",
                                  "## Name = alice", "#  Name = alice"])
def test_other_comments_are_ignored_as_wg_quick_ignores_them(line):
    assert peer_of(line).name is None


@pytest.mark.parametrize(("line", "label"), [
    ("# Name = a = b", "a = b"),
    ("# Name==x", "=x"),
    ("# Name = desk #3 = blue", "desk #3 = blue"),
    ("# Name =  lead\tand trail  ", "lead\tand trail"),
])
def test_a_label_holds_everything_after_the_first_equals(line, label):
    assert peer_of(line).name == label


@pytest.mark.parametrize("label", ["a = b", "=x", "x=", "= =", "  padded  ", "\tt\tab\t", "# not a comment",
                                   "Name = y", "x\t=\ty", "ä ñ 日本", "PublicKey = x"])
def test_a_label_reads_back_the_same_after_a_round_trip(label):
    peer = Peer(PEER_A, name=label, expires="2035-01-31T18:00:00Z")
    iface = Interface(private_key=SERVER_KEY, peers=[peer])
    text = render(iface)
    again = parse(text)
    assert again == iface and again.peers[0].name == label.strip(" \t")
    # Verified by other means: the label line of the file holds the label after '# Name = ', as written.
    assert f"\n# Name = {label.strip(' ' + chr(9))}\n" in text
    assert render(again) == text


def test_the_expiry_line_is_read_with_or_without_spaces():
    for line in ("# Expires = 2035-01-31T18:00:00Z", "# Expires=2035-01-31T18:00:00Z", "# expires =\t2035-01-31T18:00:00Z "):
        assert peer_of(line).expires == "2035-01-31T18:00:00Z"
    assert peer_of("# Expires =").expires is None


@pytest.mark.parametrize("value", ["30", "1700000000", "2035-01-31", "2035-01-31T19:00:00+01:00", "soon", "2035-01-31T18:00:00z"])
def test_an_expiry_not_in_the_canonical_form_is_refused_naming_the_line(value):
    """Was: '30' and '1700000000' read as Unix times (1970, 2023: the peer revoked on the next run), a date as
    its midnight, an offset converted."""
    with pytest.raises(WgValueError) as err:
        parse(f"[Interface]\nPrivateKey = {SERVER_KEY}\n\n[Peer]\n# Expires = {value}\nPublicKey = {PEER_A}\n",
              source="wg0.conf")
    assert str(err.value).startswith("wg0.conf, [Peer] at line 4: expires: "), str(err.value)
