"""actor.faults: the fault settings a system holds. The rule of blocked links on its own, then
real systems: the shared settings reach systems made later, a system's own settings reach only
it, and the course's latency knob applies to connections dialled after it is set."""

import time

import pytest
from hypothesis import given, strategies as st

import actor
import csp
from actor.faults import Faults, process_faults
from tests.actor.messages import Echo, Ping

addresses = st.sampled_from(["a:1", "b:2", "c:3"])


@given(st.lists(st.tuples(addresses | st.just("*"), addresses | st.just("*")), max_size=4),
       addresses, addresses)
def test_a_tell_is_blocked_exactly_when_a_blocked_pair_names_its_link(pairs, source, target):
    faults = Faults()
    for a, b in pairs:
        faults.block(a, b)
    ends = (source, target)
    # a pair names the link itself, or one of its ends beside "*" (that end cut off from all)
    expected = any({a, b} == {source, target} or (a == "*" and b in ends)
                   or (b == "*" and a in ends) for a, b in pairs)
    assert faults.is_blocked(source, target) == expected
    assert faults.is_blocked(target, source) == expected   # both directions
    faults.unblock_all()
    assert not faults.is_blocked(source, target)


def test_latency_cannot_be_negative():
    with pytest.raises(ValueError):
        Faults().set_latency_ms(-1)
    with pytest.raises(ValueError):
        actor.set_artificial_latency_ms(-1)
    assert process_faults().latency_ms == 0


def delivered_within(chan, seconds: float) -> bool:
    index, _, _ = csp.select(csp.Recv(chan), csp.Recv(csp.after(seconds)))
    return index == 0


def ping(sender, receiver) -> csp.Chan:
    """Tell `receiver`'s Echo a Ping from `sender`; the Echo's answer arrives on the result."""
    echo = receiver.start_actor(Echo)
    ref, chan = receiver.new_channel_ref()
    sender.tell(echo, Ping(1, ref))
    return chan


def test_systems_share_the_process_faults_even_those_made_after_a_block(make_system):
    first = make_system()
    assert first.faults is process_faults()
    actor.block_remote_tells(first.address, "*")
    try:
        later = make_system()   # made after the block: the block reaches it too
        assert later.faults is process_faults()
        assert not delivered_within(ping(later, first), 0.5)
        assert later.errors and isinstance(later.errors[0], actor.RemoteTellsBlocked)
    finally:
        actor.unblock_remote_tells()
    assert delivered_within(ping(later, first), 5.0)


def test_a_system_with_its_own_faults_is_the_only_one_they_reach(make_system):
    own = actor.ActorSystem(faults=Faults())
    own.errors = []
    own.on_error(own.errors.append)
    try:
        shared = make_system()
        own.faults.block(own.address, shared.address)
        assert not delivered_within(ping(own, shared), 0.5)
        assert own.errors and isinstance(own.errors[0], actor.RemoteTellsBlocked)
        # the shared settings know nothing of it: the other way round gets through
        assert not process_faults().is_blocked(shared.address, own.address)
        assert delivered_within(ping(shared, own), 5.0)
        own.faults.unblock_all()
        assert delivered_within(ping(own, shared), 5.0)
    finally:
        own.close()


def test_latency_set_after_a_system_was_made_delays_connections_it_dials_afterwards(
        make_system):
    sender, receiver = make_system(), make_system()
    actor.set_artificial_latency_ms(300)
    start = time.monotonic()
    assert delivered_within(ping(sender, receiver), 5.0)
    assert time.monotonic() - start >= 0.3
