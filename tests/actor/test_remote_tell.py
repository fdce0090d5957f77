"""The course's RemoteTellBasic, RemoteTellOrder and RemoteTellNoBlock: two actor systems with
200 ms of artificial latency, 800 ms per message; no system error may be reported."""

import time

import csp
import actor
from tests.actor.messages import Echo, Ping

LATENCY_MS = 200
PER_MESSAGE_SECONDS = 4 * LATENCY_MS / 1000


def recv_within(chan, seconds, what):
    index, value, _ = csp.select(csp.Recv(chan), csp.Recv(csp.after(seconds)))
    assert index == 0, f"{what} did not arrive within {seconds * 1000:.0f} ms"
    return value


def two_systems(make_system):
    actor.set_artificial_latency_ms(LATENCY_MS)
    return make_system(), make_system()


def test_remote_tell_basic(make_system):
    sender, receiver = two_systems(make_system)
    echo = receiver.start_actor(Echo)
    reply_ref, reply = receiver.new_channel_ref()
    sender.tell(echo, Ping(42, reply_ref))
    assert recv_within(reply, PER_MESSAGE_SECONDS, "the remote tell") == 42
    assert sender.errors == [] and receiver.errors == []


class Collector(actor.Actor):
    """Collects Ping values; after five, tells the list to the last Ping's reply_to."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.values = []

    def on_message(self, message):
        self.values.append(message.value)
        if len(self.values) == 5:
            self.ctx.tell(message.reply_to, self.values)


def test_remote_tell_order(make_system):
    sender, receiver = two_systems(make_system)
    collector = receiver.start_actor(Collector)
    reply_ref, reply = receiver.new_channel_ref()
    for i in range(5):
        sender.tell(collector, Ping(i, reply_ref))
    assert recv_within(reply, 5 * PER_MESSAGE_SECONDS, "five messages") == [0, 1, 2, 3, 4]
    assert sender.errors == [] and receiver.errors == []


def test_remote_tell_no_block(make_system):
    """Five tells back to back all arrive within 800 ms: the sender pipelines."""
    sender, receiver = two_systems(make_system)
    echo = receiver.start_actor(Echo)
    refs = [receiver.new_channel_ref() for _ in range(5)]
    start = time.monotonic()
    for i, (ref, _) in enumerate(refs):
        sender.tell(echo, Ping(i, ref))
    for i, (_, chan) in enumerate(refs):
        remaining = PER_MESSAGE_SECONDS - (time.monotonic() - start)
        assert recv_within(chan, max(remaining, 0), f"message {i}") == i
    assert sender.errors == [] and receiver.errors == []
