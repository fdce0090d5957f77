"""LSP messages and their wire format: Go's `encoding/json` of the course's `Message` struct,
byte for byte, so a Go LSP peer can talk to ours.

    {"Type":1,"ConnID":7,"SeqNum":2,"Size":3,"Checksum":40246,"Payload":"YWJj"}

Keys in that order, no spaces, `Payload` base64 (standard alphabet, padded) or `null` when there
is none (Connect, Ack, CAck). `checksum` is the course's 16-bit sum over ConnID, SeqNum, Size
and the payload (not the type), quirks included. Pure: no sockets, threads or clocks.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
import sys
from array import array
from dataclasses import dataclass

from lsp.errors import MessageError

MAX_DATAGRAM_BYTES = 2000  # lspnet's read buffer; messages should stay near 1,000 bytes


class MsgType(enum.IntEnum):
    CONNECT = 0
    DATA = 1
    ACK = 2
    CACK = 3


@dataclass(frozen=True, slots=True)
class Message:
    type: MsgType
    conn_id: int
    seq_num: int
    size: int = 0
    checksum: int = 0
    payload: bytes | None = None

    def __str__(self) -> str:  # the course's debug form
        name = {0: "Connect", 1: "Data", 2: "Ack", 3: "CAck"}[self.type]
        if self.type == MsgType.DATA:
            return f"[{name} {self.conn_id} {self.seq_num} {self.checksum} {self.payload!r}]"
        return f"[{name} {self.conn_id} {self.seq_num}]"


def new_connect(initial_seq_num: int) -> Message:
    return Message(MsgType.CONNECT, 0, initial_seq_num)


def new_data(conn_id: int, seq_num: int, size: int, payload: bytes, checksum: int) -> Message:
    return Message(MsgType.DATA, conn_id, seq_num, size, checksum, payload)


def new_ack(conn_id: int, seq_num: int) -> Message:
    """Acknowledges one Connect or Data message; `seq_num` 0 is a heartbeat."""
    return Message(MsgType.ACK, conn_id, seq_num)


def new_cack(conn_id: int, seq_num: int) -> Message:
    """Acknowledges every Data message of the connection up to and including `seq_num`."""
    return Message(MsgType.CACK, conn_id, seq_num)


def data_message(conn_id: int, seq_num: int, payload: bytes) -> Message:
    """A Data message with its size and checksum filled in."""
    return new_data(conn_id, seq_num, len(payload), payload,
                    checksum(conn_id, seq_num, len(payload), payload))


# ---- checksum ------------------------------------------------------------------------------

def _fold_uint32(value: int) -> int:
    """Low plus high 16 bits of a uint32, in 16-bit arithmetic (the carry is lost: a quirk of
    the course's code that the checksum must reproduce)."""
    value &= 0xFFFFFFFF
    return ((value & 0xFFFF) + (value >> 16)) & 0xFFFF


def _payload_sum(payload: bytes) -> int:
    """Sum of the payload as little-endian 16-bit words (odd length padded with 0x00), as the
    uint32 the course's code computes."""
    if len(payload) % 2:
        payload += b"\x00"
    words = array("H", payload)
    if sys.byteorder != "little":
        words.byteswap()
    return sum(words) & 0xFFFFFFFF


def checksum(conn_id: int, seq_num: int, size: int, payload: bytes) -> int:
    """The course's checksum: (1, 1, 3, b"abc") -> 40246; all zero and empty -> 65535."""
    payload = payload or b""
    header = _fold_uint32(conn_id) + _fold_uint32(seq_num) + _fold_uint32(size)
    if len(payload) <= _FAST_PAYLOAD_LIMIT:
        # Folding the carries back in (below) leaves the sum's value modulo 0xFFFF, and
        # 65536 = 1 (mod 0xFFFF): so the payload read as one little-endian integer has the
        # same residue as the sum of its words. One big-int operation instead of a loop.
        total = header + int.from_bytes(payload, "little")
        if total == 0:
            return 0xFFFF
        return ~((total - 1) % 0xFFFF + 1) & 0xFFFF
    total = (header + _payload_sum(payload)) & 0xFFFFFFFF
    while total > 0xFFFF:
        total = (total >> 16) + (total & 0xFFFF)
    return ~total & 0xFFFF


# Below this many bytes the uint32 sum of the words cannot overflow, so the residue shortcut
# is exact; longer payloads (never in one datagram) take the word loop.
_FAST_PAYLOAD_LIMIT = 65536


def accept_data(message: Message) -> bytes | None:
    """The payload a received Data message delivers, or None if it must be treated as lost.

    The course's order matters: a payload shorter than `Size` is rejected; a longer one is
    cut to `Size`; then the checksum is verified on what is left.
    """
    payload = message.payload or b""
    if len(payload) < message.size:
        return None
    if len(payload) > message.size:
        payload = payload[:message.size]
    if checksum(message.conn_id, message.seq_num, message.size, payload) != message.checksum:
        return None
    return payload


# ---- wire format ---------------------------------------------------------------------------

def encode(message: Message) -> bytes:
    """The Go JSON encoding of `message`."""
    payload = message.payload
    payload_json = "null" if payload is None else '"' + base64.b64encode(payload).decode() + '"'
    return (f'{{"Type":{int(message.type)},"ConnID":{message.conn_id},'
            f'"SeqNum":{message.seq_num},"Size":{message.size},'
            f'"Checksum":{message.checksum},"Payload":{payload_json}}}').encode()


def load_json_object(raw: bytes, error: type[Exception]) -> dict:
    """The opening of a decode in the manner of Go's `json.Unmarshal` into a struct: the JSON
    object `raw` holds, keys as written; raises `error` ("not JSON: ..." or "not a JSON
    object") for anything else. The caller then reads each field, a missing one as zero.
    (The miner's messages, carried as LSP payloads, are decoded the same way.)"""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise error("not a JSON object")
    return obj


_FIELDS = ("Type", "ConnID", "SeqNum", "Size", "Checksum")
_TYPES = tuple(MsgType)

# What `encode` (and Go's encoding/json) writes: the keys in order, no spaces, integers in JSON's
# form (no leading zeros), the payload base64 or null. Such a datagram is parsed by this one
# pattern; anything else (other key orders, spaces, escapes, unknown keys, other kinds of value)
# goes through json.loads, which gives the same Message for every text both accept.
_INT = rb"(-?(?:0|[1-9][0-9]*))"
_CANONICAL = re.compile(rb'\{"Type":([0-3]),"ConnID":' + _INT + rb',"SeqNum":' + _INT
                        + rb',"Size":' + _INT + rb',"Checksum":(0|[1-9][0-9]{0,4}),'
                        rb'"Payload":(?:null|"([A-Za-z0-9+/=]*)")\}')
_canonical = _CANONICAL.fullmatch


def decode(datagram: bytes) -> Message:
    """Parse one datagram; raises `MessageError` (with the reason) for anything malformed.

    As Go's decoder does, a missing field is zero and an unknown key is ignored; a value of the
    wrong kind, an unknown type, a checksum outside 16 bits or bad base64 is an error.
    """
    match = _canonical(datagram)
    if match is None:
        return _decode_json(datagram)
    kind, conn_id, seq_num, size, check, raw = match.groups()
    check = int(check)
    if check > 0xFFFF:
        raise MessageError(f"Checksum out of range: {check}")
    if raw is None:
        payload = None
    else:
        try:
            payload = binascii.a2b_base64(raw, strict_mode=True)
        except (binascii.Error, ValueError):
            raise MessageError("Payload is not valid base64") from None
    return Message(_TYPES[int(kind)], int(conn_id), int(seq_num), int(size), check, payload)


def _decode_json(datagram: bytes) -> Message:
    """`decode` for any text the canonical pattern does not match."""
    obj = load_json_object(datagram, MessageError)
    values = []
    for key in _FIELDS:
        value = obj.get(key, 0)
        if type(value) is not int:
            raise MessageError(f"{key} is not an integer: {value!r:.40}")
        values.append(value)
    kind, conn_id, seq_num, size, check = values
    if kind not in (0, 1, 2, 3):
        raise MessageError(f"unknown message type {kind}")
    if not 0 <= check <= 0xFFFF:
        raise MessageError(f"Checksum out of range: {check}")
    raw = obj.get("Payload")
    if raw is None:
        payload = None
    elif isinstance(raw, str):
        try:
            payload = binascii.a2b_base64(raw, strict_mode=True)
        except (binascii.Error, ValueError):
            raise MessageError("Payload is not valid base64") from None
    else:
        raise MessageError("Payload is neither a base64 string nor null")
    return Message(MsgType(kind), conn_id, seq_num, size, check, payload)
