"""The LSP wire format (golden bytes of Go's encoding/json), the checksum, the size rules, and
a decoder that turns any malformed datagram into MessageError, never anything else."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsp import MessageError, Params
from lsp.message import (
    Message, MsgType, accept_data, checksum, data_message, decode, encode, new_ack, new_cack,
    new_connect, new_data,
)

GOLDEN = [
    (new_connect(42),
     b'{"Type":0,"ConnID":0,"SeqNum":42,"Size":0,"Checksum":0,"Payload":null}'),
    (data_message(1, 1, b"abc"),
     b'{"Type":1,"ConnID":1,"SeqNum":1,"Size":3,"Checksum":40246,"Payload":"YWJj"}'),
    (new_ack(7, 0),
     b'{"Type":2,"ConnID":7,"SeqNum":0,"Size":0,"Checksum":0,"Payload":null}'),
    (new_cack(7, 19),
     b'{"Type":3,"ConnID":7,"SeqNum":19,"Size":0,"Checksum":0,"Payload":null}'),
    (new_data(3, 9, 0, b"", 65523),
     b'{"Type":1,"ConnID":3,"SeqNum":9,"Size":0,"Checksum":65523,"Payload":""}'),
]


@pytest.mark.parametrize("message, wire", GOLDEN)
def test_golden_wire_bytes(message, wire):
    assert encode(message) == wire
    assert decode(wire) == message


def test_checksum_check_values_of_the_handout():
    assert checksum(1, 1, 3, b"abc") == 40246
    assert checksum(0, 0, 0, b"") == 65535


def test_checksum_drops_the_carry_when_folding_each_header_field():
    # 0x0001FFFF folds to 0xFFFF + 0x0001 = 0x10000, which 16-bit arithmetic makes 0.
    assert checksum(0x0001FFFF, 0, 0, b"") == checksum(0, 0, 0, b"") == 0xFFFF
    # A wider value is truncated to uint32 first.
    assert checksum(0x1_0000_0005, 0, 0, b"") == checksum(5, 0, 0, b"")


def test_checksum_reads_the_payload_as_little_endian_words_padded_with_zero():
    assert checksum(0, 0, 0, b"\x01") == (~0x0001) & 0xFFFF
    assert checksum(0, 0, 0, b"\x00\x01") == (~0x0100) & 0xFFFF


def reference_checksum(conn_id, seq, size, payload):
    """A slow transcription of the handout's algorithm, to compare against."""
    def fold(v):
        v &= 0xFFFFFFFF
        return ((v & 0xFFFF) + (v >> 16)) & 0xFFFF
    total = fold(conn_id) + fold(seq) + fold(size)
    for i in range(0, len(payload), 2):
        low = payload[i]
        high = payload[i + 1] if i + 1 < len(payload) else 0
        total = (total + (high << 8 | low)) & 0xFFFFFFFF
    while total > 0xFFFF:
        total = (total >> 16) + (total & 0xFFFF)
    return ~total & 0xFFFF


@given(st.integers(0, 2**40), st.integers(0, 2**40), st.integers(0, 2**40),
       st.binary(max_size=1200))
def test_checksum_matches_the_handout_algorithm(conn_id, seq, size, payload):
    assert checksum(conn_id, seq, size, payload) == reference_checksum(conn_id, seq, size,
                                                                       payload)


@given(st.sampled_from(list(MsgType)), st.integers(0, 2**31), st.integers(0, 2**31),
       st.integers(0, 2000), st.integers(0, 0xFFFF), st.one_of(st.none(), st.binary(max_size=1000)))
def test_encode_decode_round_trip(kind, conn_id, seq, size, check, payload):
    message = Message(kind, conn_id, seq, size, check, payload)
    wire = encode(message)
    assert decode(wire) == message
    # What Go's encoding/json would produce for the struct, key order included.
    assert json.loads(wire) == {
        "Type": int(kind), "ConnID": conn_id, "SeqNum": seq, "Size": size, "Checksum": check,
        "Payload": None if payload is None else base64.b64encode(payload).decode()}
    assert list(json.loads(wire)) == ["Type", "ConnID", "SeqNum", "Size", "Checksum", "Payload"]


def test_a_payload_shorter_than_size_is_rejected():
    good = data_message(2, 5, b"12345")
    short = new_data(2, 5, 5, b"123", good.checksum)
    assert accept_data(short) is None


def test_a_longer_payload_is_cut_to_size_before_the_checksum_is_checked():
    good = data_message(2, 5, b"12345")
    assert accept_data(good) == b"12345"
    lengthened = new_data(2, 5, 5, b"12345" + b"\x02\x03\x04", good.checksum)
    assert accept_data(lengthened) == b"12345"


def test_a_corrupted_payload_is_rejected():
    good = data_message(2, 5, b"12345")
    corrupted = new_data(2, 5, 5, bytes([~b"1"[0] & 0xFF]) + b"2345", good.checksum)
    assert accept_data(corrupted) is None


@pytest.mark.parametrize("datagram", [
    b"", b"{", b"[]", b"null", b"42", b'"x"', b"\xff\xfe",
    b'{"Type":9}', b'{"Type":"1"}', b'{"Type":1.5}', b'{"Type":true}',
    b'{"Type":1,"Checksum":70000}', b'{"Type":1,"Checksum":-1}',
    b'{"Type":1,"Payload":"***"}', b'{"Type":1,"Payload":5}', b'{"Type":1,"Payload":[1]}',
])
def test_malformed_datagrams_raise_message_error(datagram):
    with pytest.raises(MessageError):
        decode(datagram)


def test_missing_fields_are_zero_and_unknown_keys_ignored_as_in_go():
    assert decode(b'{"Type":2,"ConnID":4,"Extra":[1,2]}') == new_ack(4, 0)


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=300),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                              lambda kids: st.lists(kids) | st.dictionaries(
                                  st.sampled_from(["Type", "ConnID", "SeqNum", "Size",
                                                   "Checksum", "Payload", "x"]), kids),
                              max_leaves=10).map(lambda v: json.dumps(v).encode())))
def test_decode_of_anything_returns_a_message_or_raises_message_error(datagram):
    try:
        message = decode(datagram)
    except MessageError:
        return
    assert isinstance(message, Message)


def _outcome(fn, datagram):
    try:
        return fn(datagram)
    except MessageError:
        return "MessageError"


@settings(max_examples=400)
@given(st.integers(-2, 5), st.integers(-2**40, 2**40), st.integers(-2**40, 2**40),
       st.integers(-5, 3000), st.integers(-2, 10**6),
       st.one_of(st.none(), st.text("ABCxyz019+/=", max_size=12),
                 st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())),
       st.sampled_from(["", " ", "\n", "0"]))
def test_the_canonical_fast_path_decodes_as_json_does(kind, conn_id, seq, size, check, payload,
                                                      noise):
    """decode() parses Go's exact form with one pattern and everything else with json.loads:
    on any datagram of (nearly) that form, both give the same Message or both refuse it."""
    from lsp.message import _decode_json
    payload_json = "null" if payload is None else f'"{payload}"'
    datagram = (f'{{"Type":{kind},"ConnID":{conn_id},"SeqNum":{seq},"Size":{size},'
                f'"Checksum":{noise.strip()}{check},"Payload":{payload_json}}}{noise}').encode()
    assert _outcome(decode, datagram) == _outcome(_decode_json, datagram)


def test_params_defaults_and_ranges():
    assert Params() == Params(5, 2000, 1, 0, 1)
    assert Params(3, 500, 5, 0, 50).max_unacked_messages == 50  # may exceed the window
    for bad in ({"epoch_limit": 0}, {"epoch_millis": 0}, {"window_size": 0},
                {"max_back_off_interval": -1}, {"max_unacked_messages": -1},
                {"window_size": 2.5}, {"epoch_limit": True}):
        with pytest.raises(ValueError):
            Params(**bad)


def test_checksum_of_a_payload_too_long_for_one_datagram_follows_the_word_loop():
    payload = bytes(range(256)) * 300 + b"\x07"   # 76,801 bytes: the uint32 sum path
    assert checksum(5, 6, len(payload), payload) == reference_checksum(5, 6, len(payload),
                                                                         payload)
