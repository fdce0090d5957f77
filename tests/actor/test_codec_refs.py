"""Hypothesis properties: nested registered dataclasses holding ActorRefs (in fields, lists,
str-keyed dicts, nested dataclasses, beside None and bytes) survive the rpc codec unchanged,
and arrive equal and as distinct objects when sent through a real ActorSystem: to a channel
ref, through a local actor, and through an actor of another system (a remote tell)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass

import pytest
from hypothesis import given, settings, strategies as st

import csp
import rpc
from rpc import codec
import actor
from actor import ActorRef


@rpc.register
@dataclass
class Leaf:
    ref: ActorRef | None
    data: bytes = b""


@rpc.register
@dataclass
class Node:
    name: str
    ref: ActorRef
    refs: list = field(default_factory=list)
    table: dict = field(default_factory=dict)
    child: Leaf | None = None
    extra: object = None


@rpc.register
@dataclass
class Forward:
    """Ask a Forwarder to tell `value` to `to`."""
    value: object
    to: ActorRef


class Forwarder(actor.Actor):
    def on_message(self, message):
        self.ctx.tell(message.to, message.value)


# ---- strategies ---------------------------------------------------------------------------------

refs = st.builds(ActorRef,
                 address=st.one_of(st.just("127.0.0.1:9000"),
                                   st.builds("{}:{}".format, st.text(max_size=12),
                                             st.integers(1, 65535))),
                 counter=st.integers(-1, 2**40))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=False), st.text(max_size=20), st.binary(max_size=20),
                    refs)
leaves = st.builds(Leaf, ref=st.none() | refs, data=st.binary(max_size=24))


def extend(children):
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
        st.builds(Node, name=st.text(max_size=10), ref=refs,
                  refs=st.lists(refs | st.none(), max_size=4),
                  table=st.dictionaries(st.text(max_size=6), refs | leaves | children,
                                        max_size=3),
                  child=st.none() | leaves, extra=children),
    )


values = st.recursive(scalars | leaves, extend, max_leaves=8)
messages = st.builds(Node, name=st.text(max_size=10), ref=refs,
                     refs=st.lists(refs, max_size=5),
                     table=st.dictionaries(st.text(max_size=6), values, max_size=4),
                     child=st.none() | leaves, extra=values)


# ---- strict comparison ----------------------------------------------------------------------------

def same(a, b) -> bool:
    """Equal with the same types all the way down (so True never passes for 1, nor 1 for
    1.0), and -0.0 keeps its sign."""
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
    if type(a) is float:
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


def mutable_ids(value, into=None) -> set:
    """ids of every list, dict and (non-frozen) dataclass instance inside `value`."""
    into = set() if into is None else into
    if type(value) is list:
        into.add(id(value))
        for item in value:
            mutable_ids(item, into)
    elif type(value) is dict:
        into.add(id(value))
        for item in value.values():
            mutable_ids(item, into)
    elif is_dataclass(value) and not type(value).__dataclass_params__.frozen:
        into.add(id(value))
        for f in fields(value):
            mutable_ids(getattr(value, f.name), into)
    return into


def assert_distinct_copy(sent, got) -> None:
    assert same(sent, got), f"{got!r} != {sent!r}"
    if mutable_ids(sent):
        assert got is not sent
        assert not (mutable_ids(sent) & mutable_ids(got)), "an object is shared"


# ---- the codec alone ----------------------------------------------------------------------------

SETTINGS = settings(max_examples=100, deadline=None)


@SETTINGS
@given(messages)
def test_codec_round_trip_of_messages_with_refs(message):
    got = codec.loads(codec.dumps(message))
    assert_distinct_copy(message, got)
    assert codec.dumps(got) == codec.dumps(message)


@SETTINGS
@given(values)
def test_codec_round_trip_of_any_carried_value(value):
    assert_distinct_copy(value, codec.loads(codec.dumps(value)))


@SETTINGS
@given(st.lists(refs, max_size=6))
def test_refs_survive_as_equal_hashable_values(ref_list):
    got = codec.loads(codec.dumps(ref_list))
    assert got == ref_list
    assert {r.uid() for r in got} == {r.uid() for r in ref_list}
    assert set(got) == set(ref_list)   # frozen: usable as set members and dict keys


# ---- through real actor systems -----------------------------------------------------------------

@pytest.fixture(scope="module")
def systems():
    """Two systems (errors collected in `.errors`) and a Forwarder on each, for the module."""
    local, remote = actor.ActorSystem(), actor.ActorSystem()
    for system in (local, remote):
        system.errors = []
        system.on_error(system.errors.append)
    forwarders = local.start_actor(Forwarder), remote.start_actor(Forwarder)
    # Open both remote-tell connections now, so no test starts threads the module outlives.
    ref, chan = local.new_channel_ref()
    local.tell(forwarders[1], Forward("warm", ref))
    assert receive(chan) == "warm"
    yield local, remote, forwarders
    local.close()
    remote.close()


def receive(chan, seconds=5.0):
    index, value, _ = csp.select(csp.Recv(chan), csp.Recv(csp.after(seconds)))
    assert index == 0, f"nothing arrived within {seconds} s"
    return value


@SETTINGS
@given(messages)
def test_a_message_sent_to_a_channel_ref_arrives_equal_and_distinct(systems, message):
    local, _, _ = systems
    ref, chan = local.new_channel_ref()
    local.tell(ref, message)
    assert_distinct_copy(message, receive(chan))
    assert local.errors == []


@SETTINGS
@given(messages)
def test_a_message_through_a_local_actor_arrives_equal_and_distinct(systems, message):
    local, _, (forwarder, _) = systems
    ref, chan = local.new_channel_ref()
    local.tell(forwarder, Forward(message, ref))
    assert_distinct_copy(message, receive(chan))
    assert local.errors == []


@SETTINGS
@given(st.lists(messages, min_size=1, max_size=3))
def test_messages_through_a_remote_actor_arrive_equal_distinct_and_in_order(systems, batch):
    local, remote, (_, forwarder) = systems
    targets = [local.new_channel_ref() for _ in batch]
    for message, (ref, _) in zip(batch, targets):
        local.tell(forwarder, Forward(message, ref))    # local -> remote -> back to local
    for message, (_, chan) in zip(batch, targets):
        assert_distinct_copy(message, receive(chan))
    assert local.errors == [] and remote.errors == []
