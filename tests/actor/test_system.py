"""The actor system's contract beyond the course's tests: marshalling isolates actors, errors
reach the handler, stats on a scripted scenario, hostile input at the remote-tell port, close."""

import socket
import struct
import time
from dataclasses import dataclass

import pytest

import csp
import rpc
import actor
from tests.actor.messages import Bag, Echo, Ping


def recv_within(chan, seconds=2.0):
    index, value, _ = csp.select(csp.Recv(chan), csp.Recv(csp.after(seconds)))
    assert index == 0, f"nothing arrived within {seconds} s"
    return value


def test_a_sent_object_mutated_after_tell_changes_nothing_the_receiver_sees(make_system):
    system = make_system()
    echo = system.start_actor(Echo)
    ref, chan = system.new_channel_ref()
    bag = Bag([1, [2, 3]], ref)
    system.tell(echo, bag)
    bag.items[1].append("mutated")
    bag.items.append("mutated")
    assert recv_within(chan) == [1, [2, 3]]


def test_an_exception_in_on_message_reaches_on_error_and_the_actor_goes_on(make_system):
    system = make_system()
    echo = system.start_actor(Echo)
    system.tell(echo, "not a ping")            # Echo raises ValueError
    ref, chan = system.new_channel_ref()
    system.tell(echo, Ping(7, ref))
    assert recv_within(chan) == 7
    assert len(system.errors) == 1 and isinstance(system.errors[0], ValueError)


def test_an_unregistered_type_raises_at_the_tell(make_system):
    @dataclass
    class Unregistered:
        x: int

    system = make_system()
    echo = system.start_actor(Echo)
    with pytest.raises(rpc.EncodeError):
        system.tell(echo, Unregistered(1))
    with pytest.raises(rpc.EncodeError):
        system.tell(echo, (1, 2))             # tuples do not travel: lists do


def test_a_channel_ref_takes_the_first_message_only(make_system):
    system = make_system()
    ref, chan = system.new_channel_ref()
    system.tell(ref, "first")
    system.tell(ref, "second")
    assert recv_within(chan) == "first"
    assert len(system.errors) == 1
    index, _, _ = csp.select(csp.Recv(chan), default=True)
    assert index == -1


def test_tell_after_delivers_later_in_due_order(make_system):
    system = make_system()
    refs = [system.new_channel_ref() for _ in range(3)]
    start = time.monotonic()
    for (ref, _), delay in zip(refs, (0.3, 0.1, 0.2)):
        system.tell_after(ref, delay, delay)
    for (_, chan), delay in zip(refs, (0.3, 0.1, 0.2)):
        assert recv_within(chan) == delay
    assert time.monotonic() - start >= 0.3


class Ticker(actor.Actor):
    """Sends itself a tick every 100 ms until it has 5; answers a Ping with the count once it
    has them all (waiting for the last tick if the Ping comes first)."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.ticks = 0
        self.asked = None

    def on_message(self, message):
        if message == "tick":
            self.ticks += 1
            if self.ticks < 5:
                self.ctx.tell_after(self.ctx.self, "tick", 0.1)
        elif type(message) is Ping:
            self.asked = message.reply_to
        if self.asked is not None and self.ticks == 5:
            self.ctx.tell(self.asked, self.ticks)
            self.asked = None


def test_stats_on_a_scripted_scenario(make_system):
    system = make_system()
    ticker = system.start_actor(Ticker)
    system.tell(ticker, "tick")                       # 1 external tell
    ref, chan = system.new_channel_ref()
    system.tell(ticker, Ping(0, ref))                 # 1 external; the ticker tells ref once,
    assert recv_within(chan) == 5                     # after sending itself 4 more ticks
    stats = system.stats()
    assert stats.messages_sent_external == 2
    assert stats.messages_sent_actor == 4 + 1
    assert stats.messages_sent == 7
    assert stats.channel_refs_used == 1
    assert stats.remote_bytes_received == 0
    # Five "tick"s (one external, four to itself), one Ping, and the answer 5.
    tick = len(rpc.codec.dumps("tick"))
    assert stats.bytes_sent == (5 * tick + len(rpc.codec.dumps(Ping(0, ref)))
                                + len(rpc.codec.dumps(5)))
    # Four ticks to itself within the actor's first second: 4 / floor(age + 1.1) = 4 / 1.
    assert stats.max_message_rate == 4


def test_remote_bytes_are_counted_on_the_receiver(make_system):
    sender, receiver = make_system(), make_system()
    echo = receiver.start_actor(Echo)
    ref, chan = receiver.new_channel_ref()
    message = Ping(1, ref)
    sender.tell(echo, message)
    assert recv_within(chan) == 1
    assert receiver.stats().remote_bytes_received == len(rpc.codec.dumps(message))
    assert sender.stats().bytes_sent == len(rpc.codec.dumps(message))


@pytest.mark.parametrize("garbage", [
    b"\x00\x00\x00\x05hello",
    b"\xff\xff\xff\xff",
    struct.pack(">I", 30) + b'{"id":1,"method":"RemoteTell.tell","args":{"t":"os.system"}}'[:30],
    b"GET / HTTP/1.1\r\n\r\n",
])
def test_hostile_bytes_at_the_remote_tell_port_crash_nothing(make_system, garbage):
    system = make_system()
    echo = system.start_actor(Echo)
    host, port = system.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2) as sock:
        sock.sendall(garbage)
    ref, chan = system.new_channel_ref()
    system.tell(echo, Ping(3, ref))
    assert recv_within(chan) == 3


def test_hostile_json_inside_a_remote_tell_is_reported_not_built(make_system):
    system = make_system()
    echo = system.start_actor(Echo)
    client = rpc.dial(system.address)
    try:
        for text in ("not json", '{"t":"builtins.eval","f":{}}', '{"b":"@@@"}'):
            batch = actor.wire.RemoteTellBatch([echo.counter], [text])
            client.call("RemoteTell.tell_batch", batch, timeout=2)
    finally:
        client.close()
    ref, chan = system.new_channel_ref()
    system.tell(echo, Ping(4, ref))
    assert recv_within(chan) == 4
    assert len(system.errors) == 3
    assert all(isinstance(e, rpc.FrameError) for e in system.errors)


def test_close_is_idempotent_and_later_tells_are_dropped(make_system):
    system = make_system()
    echo = system.start_actor(Echo)
    ref, chan = system.new_channel_ref()
    system.close()
    system.close()
    system.tell(echo, Ping(1, ref))
    assert system.start_actor(Echo) == actor.ActorRef(system.address, -1)
    index, _, _ = csp.select(csp.Recv(chan), csp.Recv(csp.after(0.2)))
    assert index == 1


def test_last_actor_system_returns_the_newest_once(make_system):
    actor.last_actor_system()
    system = make_system()
    assert actor.last_actor_system() is system
    assert actor.last_actor_system() is None


def test_refs_are_frozen_registered_values():
    ref = actor.ActorRef("127.0.0.1:1", 5)
    assert ref.uid() == "127.0.0.1:1/5"
    assert rpc.codec.loads(rpc.codec.dumps([ref, {"r": ref}])) == [ref, {"r": ref}]
    with pytest.raises(Exception):
        ref.counter = 6


def test_the_handouts_counter_example_prints_3():
    import subprocess
    import sys
    root = str(__import__("pathlib").Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-m", "actor", "example", "counter"], cwd=root,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "3\n"
