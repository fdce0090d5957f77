"""The rpc codec (`rpc.codec`) and the framing over a byte stream (`rpc.wire.iter_frames`):
hypothesis round trips of every carried kind (nested registered dataclasses, bytes, str-keyed
dicts, including user dicts that look like the codec's own tags), refusals at the sender
(tuples, sets, unregistered classes, non-str keys) as EncodeError, malformed payloads as
FrameError, and the 64 MiB frame limit in both directions."""

from __future__ import annotations

import dataclasses
import json
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rpc
from rpc import codec
from rpc.errors import EncodeError, FrameError
from rpc.wire import decode_envelope, decode_value, encode_value, iter_frames

MAX = codec.MAX_FRAME_BYTES


@rpc.register
@dataclasses.dataclass
class Point:
    x: int
    y: float


@rpc.register
@dataclasses.dataclass
class Node:
    label: str
    payload: object
    children: list


@rpc.register
@dataclasses.dataclass(frozen=True)
class Frozen:
    name: str
    data: bytes


@rpc.register
@dataclasses.dataclass
class Positive:
    n: int

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError("n must be positive")


@dataclasses.dataclass
class NotRegistered:
    x: int


# ---- strategies -------------------------------------------------------------------------------

# Keys include the codec's own tag letters, so a user dict that looks like a tag must survive.
keys = st.one_of(st.sampled_from(["t", "f", "b", "d", ""]), st.text(max_size=8))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(),
    st.floats(allow_nan=False),            # NaN != NaN; NaN gets its own test below
    st.text(), st.binary(max_size=64),
)


def _containers(children):
    return st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(keys, children, max_size=5),
        st.builds(Point, st.integers(), st.floats(allow_nan=False)),
        st.builds(Node, st.text(max_size=8), children, st.lists(children, max_size=3)),
        st.builds(Frozen, st.text(max_size=8), st.binary(max_size=16)),
    )


carried = st.recursive(scalars, _containers, max_leaves=30)


def same(a, b) -> bool:
    """Equal and of exactly the same types all the way down (True must not come back as 1)."""
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return a == b


# ---- round trips ------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(carried)
def test_round_trip_through_json_bytes(value):
    assert same(codec.loads(codec.dumps(value)), value)


@settings(max_examples=200, deadline=None)
@given(carried)
def test_round_trip_through_wire_form_and_copy(value):
    assert same(codec.from_wire(json.loads(json.dumps(codec.to_wire(value)))), value)
    copied = codec.copy(value)
    assert same(copied, value)
    if isinstance(value, (list, dict)) and value:
        assert copied is not value  # a network copies: nothing is shared


def test_nested_registered_dataclasses_come_back_as_their_classes():
    value = Node("root", Point(1, 2.5), [Node("leaf", {"k": [b"\x00\xff", None]}, []),
                                         Frozen("f", b"bytes")])
    back = codec.loads(codec.dumps(value))
    assert back == value
    assert type(back.payload) is Point and type(back.children[1]) is Frozen
    assert type(back.children[0].payload["k"][0]) is bytes


def test_user_dicts_shaped_like_tags_stay_dicts():
    for value in [{"t": "tests.rpc.test_codec.Point", "f": {"x": 1, "y": 2.0}},
                  {"b": "AAAA"}, {"d": {}}, {}]:
        assert same(codec.loads(codec.dumps(value)), value)


def test_floats_nan_and_infinities_travel():
    back = codec.loads(codec.dumps([math.inf, -math.inf, math.nan, -0.0]))
    assert back[:2] == [math.inf, -math.inf] and math.isnan(back[2])
    assert math.copysign(1, back[3]) == -1


def test_bytearray_travels_as_bytes():
    assert same(codec.loads(codec.dumps(bytearray(b"ab"))), b"ab")


def test_registering_twice_is_harmless_and_only_dataclasses_register():
    assert rpc.register(Point) is Point
    assert rpc.register(Point) is Point
    with pytest.raises(TypeError):
        rpc.register(int)
    with pytest.raises(TypeError):
        rpc.register(Point(1, 2.0))  # an instance, not a class


# ---- refusals at the sender -------------------------------------------------------------------

@pytest.mark.parametrize("value, hint", [
    ((1, 2), "list"),
    ({1, 2}, "list"),
    (frozenset({1}), "list"),
    (NotRegistered(1), "register"),
    ({1: "x"}, "str"),
    ({(1, 2): "x"}, "str"),
    ({None: "x"}, "str"),
    (object(), "object"),
    (1 + 2j, "complex"),
    (Point, "type"),             # a class is not a value
    ([1, [2, (3,)]], "list"),    # deep inside a list
    ({"k": {"j": {4}}}, "list"),  # deep inside dicts
    (Node("n", NotRegistered(2), []), "register"),  # inside a registered dataclass
])
def test_values_not_carried_raise_encode_error(value, hint):
    with pytest.raises(EncodeError, match=hint):
        codec.dumps(value)
    with pytest.raises(EncodeError):
        codec.to_wire(value)


def test_nesting_too_deep_is_an_encode_error():
    value: list = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(EncodeError):
        encode_value(value)


# ---- malformed payloads -----------------------------------------------------------------------

@pytest.mark.parametrize("payload", [
    b"",
    b"not json",
    b"\xff\xfe\x00",                                        # not UTF-8
    b'{"x": 1}',                                            # an untagged object
    b'{"t": "no.such.Type", "f": {}}',                      # unknown type
    b'{"t": "tests.rpc.test_codec.Point", "f": {"z": 1}}',  # wrong fields
    b'{"t": "tests.rpc.test_codec.Point", "f": {"x": 1}}',  # missing field
    b'{"b": "!!!not base64"}',
    b'{"b": 3}',
    b'{"d": 3}',
    b'{"d": {}, "b": "AA=="}',                              # two tags at once
    b'[1, {"q": 2}]',                                       # deep inside a list
    b'{"d": {"k": {"t": 5, "f": {}}}}',                     # a type name that is not a str
    b'{"a": 1, "b": 2, "c": 3}',
])
def test_malformed_payloads_raise_frame_error(payload):
    with pytest.raises(FrameError):
        codec.loads(payload)


def test_deeply_nested_input_is_a_frame_error_on_the_rpc_path():
    with pytest.raises(FrameError):
        decode_envelope(b"[" * 100_000 + b"]" * 100_000)   # json's own recursion limit
    with pytest.raises(FrameError):
        decode_value(_deep_list(100_000))                   # from_wire's


def test_a_dataclass_refusing_its_fields_is_a_frame_error_on_the_rpc_path():
    wire = codec.to_wire(Positive(1))
    wire["f"]["n"] = -1
    with pytest.raises(FrameError, match="positive"):
        decode_value(wire)


def _deep_list(depth: int):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_frame_error(payload):
    try:
        codec.loads(payload)
    except FrameError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=4)),
                    lambda c: st.one_of(st.lists(c, max_size=3),
                                        st.dictionaries(st.sampled_from(["t", "f", "b", "d", "x"]),
                                                        c, max_size=3)),
                    max_leaves=10))
def test_arbitrary_json_decodes_or_raises_frame_error(data):
    try:
        decode_value(data)
    except FrameError:
        pass


# ---- frames -----------------------------------------------------------------------------------

def test_frame_is_a_big_endian_length_then_the_payload():
    assert codec.frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert codec.frame(b"") == b"\x00\x00\x00\x00"
    assert codec.frame_length(b"\x00\x00\x01\x00") == 256


def test_frame_size_limit_at_the_sender():
    assert MAX == 64 * 1024 * 1024
    big = bytes(MAX)
    assert codec.frame_length(codec.frame(big)[:4]) == MAX  # exactly the limit: allowed
    del big
    with pytest.raises(EncodeError):
        codec.frame(bytes(MAX + 1))


@pytest.mark.parametrize("length", [MAX + 1, 2 ** 31, 2 ** 32 - 1])
def test_frame_size_limit_at_the_receiver(length):
    with pytest.raises(FrameError):
        codec.frame_length(struct.pack(">I", length))
    # ...and on a stream it is refused from the header alone, before any payload arrives.
    with pytest.raises(FrameError):
        list(iter_frames(FakeSocket([struct.pack(">I", length)])))


class FakeSocket:
    """Enough of a socket for iter_frames: recv() hands out the given chunks, then b""."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    def recv(self, _size: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=8), st.data())
def test_frames_split_anywhere_in_the_stream_come_out_whole(payloads, data):
    stream = b"".join(codec.frame(p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]
    chunks = [c for c in chunks if c]  # an empty recv means end of stream
    assert list(iter_frames(FakeSocket(chunks))) == payloads


def test_a_frame_cut_short_by_the_end_of_the_stream_is_not_delivered():
    stream = codec.frame(b"whole") + codec.frame(b"cut short")[:-2]
    assert list(iter_frames(FakeSocket([stream]))) == [b"whole"]
