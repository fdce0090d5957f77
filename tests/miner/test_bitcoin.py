"""The hash's check values, the inner loop against a plain loop, and the wire messages."""

import hashlib

import pytest
from hypothesis import given, settings, strategies as st

from miner import bitcoin
from miner.bitcoin import BadMessage, MsgType, decode, encode


def test_handout_check_values():
    assert bitcoin.hash("msg", 0) == 13781283048668101583
    assert bitcoin.hash("msg", 1) == 4754799531757243342
    assert bitcoin.hash("msg", 2) == 5611725180048225792
    assert bitcoin.scan("msg", 0, 2) == (4754799531757243342, 1)


def test_hash_is_the_first_eight_bytes_big_endian():
    digest = hashlib.sha256("héllo 12".encode()).digest()
    assert bitcoin.hash("héllo", 12) == int.from_bytes(digest[:8], "big")


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=20), st.integers(0, 2**64 - 300), st.integers(0, 200))
def test_scan_equals_brute_force(data, lower, width):
    upper = lower + width
    expected = min((bitcoin.hash(data, n), n) for n in range(lower, upper + 1))
    assert bitcoin.scan(data, lower, upper) == expected


def test_scan_refuses_an_empty_range():
    with pytest.raises(ValueError):
        bitcoin.scan("x", 5, 4)


def test_golden_wire_bytes():
    assert encode(bitcoin.new_join()) == \
        b'{"Type":0,"Data":"","Lower":0,"Upper":0,"Hash":0,"Nonce":0}'
    assert encode(bitcoin.new_request("msg", 0, 2)) == \
        b'{"Type":1,"Data":"msg","Lower":0,"Upper":2,"Hash":0,"Nonce":0}'
    assert encode(bitcoin.new_result(4754799531757243342, 1)) == \
        b'{"Type":2,"Data":"","Lower":0,"Upper":0,"Hash":4754799531757243342,"Nonce":1}'
    # Go's encoder escapes <, > and & and keeps other non-ASCII text as UTF-8.
    assert encode(bitcoin.new_request("a<b>&é", 1, 1)) == \
        '{"Type":1,"Data":"a\\u003cb\\u003e\\u0026é","Lower":1,"Upper":1,"Hash":0,"Nonce":0}'.encode()


def test_string_forms():
    assert str(bitcoin.new_join()) == "[Join]"
    assert str(bitcoin.new_request("msg", 0, 9)) == "[Request msg 0 9]"
    assert str(bitcoin.new_result(7, 3)) == "[Result 7 3]"


@given(st.sampled_from(list(MsgType)), st.text(), st.integers(0, 2**64 - 1),
       st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_decode_inverts_encode(kind, data, lower, upper, hash_value, nonce):
    message = bitcoin.Message(kind, data, lower, upper, hash_value, nonce)
    assert decode(encode(message)) == message


def test_decode_follows_go_for_missing_and_extra_keys():
    assert decode(b'{"Type":2,"Hash":5,"Extra":[1]}') == bitcoin.new_result(5, 0)


@pytest.mark.parametrize("payload", [
    b"", b"\xff\xfe", b"[]", b"null", b'{"Type":7}', b'{"Type":"1"}', b'{"Type":1,"Data":3}',
    b'{"Type":1,"Lower":-1}', b'{"Type":1,"Upper":18446744073709551616}', b'{"Type":1.0}',
    b'{"Type":true}',
])
def test_decode_rejects_what_is_not_a_message(payload):
    with pytest.raises(BadMessage):
        decode(payload)


@given(st.binary(max_size=80))
def test_decode_never_fails_otherwise(payload):
    try:
        decode(payload)
    except BadMessage:
        pass
