"""lspnet: the UDP layer LSP endpoints use, with the course's fault-injection knobs.

This is the staff-written runtime of the course (locks are allowed here). Endpoints open
sockets with `listen_udp` (server side) or `dial_udp` (client side); which constructor made a
socket decides whether the client or the server knobs apply to it.

Knobs (process-wide, thread-safe; tests call `reset()` before and after each test):
    set_client_read_drop_percent(p), set_client_write_drop_percent(p),
    set_server_read_drop_percent(p), set_server_write_drop_percent(p),
    set_read_drop_percent(p), set_write_drop_percent(p)   both sides; p in 0..100
    reset_drop_percent()                read and write drop of both sides back to 0
    set_delay_message_percent(p)        a write is deferred by DELAY_SECONDS (reordering)
    set_msg_shortening_percent(p)       Data only: payload cut to the first half of its bytes
    set_msg_lengthening_percent(p)      Data only: bytes 2, 3, 4 appended (Size, Checksum kept)
    set_msg_corrupted(flag)             Data only: first payload byte inverted (empty: [0xFF])
    start_sniff() / stop_sniff() -> SniffResult   counts Data and Ack writes, sent and dropped
    start_middlebox(fn) / stop_middlebox()        fn(message, from_server) -> Message | None
                                        rewrites or drops (None) every written message; while
                                        it is active shortening/lengthening/corruption are off
    reset()                             every knob off, sniffer and middlebox stopped

A write goes through: the delay decision; then (now or DELAY_SECONDS later) the write-drop
decision, the sniffer, the middlebox or the payload tampering, and the socket. A read drops a
datagram with the read-drop probability and waits for the next one.

Threads:
    lspnet-delay   started on first delayed write, lives for the process (daemon): owns the
                   heap of delayed writes and performs them when due. Never stops.
"""

from __future__ import annotations

import heapq
import itertools
import random
import socket
import threading
import time
from dataclasses import dataclass, field, replace

from lsp.errors import MessageError
from lsp.message import MAX_DATAGRAM_BYTES, Message, MsgType, decode, encode

DELAY_SECONDS = 0.5
DELAY_THREAD_NAME = "lspnet-delay"


@dataclass
class SniffResult:
    num_sent_acks: int = 0
    num_dropped_acks: int = 0
    num_sent_data: int = 0
    num_dropped_data: int = 0
    all_messages: list = field(default_factory=list)   # (Message, dropped, from_server)
    sent_messages: list = field(default_factory=list)  # Message, in write order


class _Knobs:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.random = random.Random()
        self.reset()

    def reset(self) -> None:
        self.read_drop = {False: 0, True: 0}    # keyed by is_server
        self.write_drop = {False: 0, True: 0}
        self.delay = 0
        self.shorten = 0
        self.lengthen = 0
        self.corrupt = False
        self.sniff: SniffResult | None = None
        self.middlebox = None

    def quiet(self) -> bool:
        """No write-side knob is on (read without the lock: a racing change is as if it had
        come a moment later)."""
        return not (self.write_drop[False] or self.write_drop[True] or self.shorten
                    or self.lengthen or self.corrupt or self.sniff is not None
                    or self.middlebox is not None)

    def chance(self, percent: int) -> bool:
        # Caller holds lock.
        return percent > 0 and (percent >= 100 or self.random.random() * 100 < percent)


_knobs = _Knobs()


def _percent(p: int) -> int:
    if not 0 <= p <= 100:
        raise ValueError(f"a percentage must be in 0..100, not {p!r}")
    return int(p)


def set_client_read_drop_percent(p: int) -> None:
    with _knobs.lock:
        _knobs.read_drop[False] = _percent(p)


def set_client_write_drop_percent(p: int) -> None:
    with _knobs.lock:
        _knobs.write_drop[False] = _percent(p)


def set_server_read_drop_percent(p: int) -> None:
    with _knobs.lock:
        _knobs.read_drop[True] = _percent(p)


def set_server_write_drop_percent(p: int) -> None:
    with _knobs.lock:
        _knobs.write_drop[True] = _percent(p)


def set_read_drop_percent(p: int) -> None:
    with _knobs.lock:
        _knobs.read_drop[False] = _knobs.read_drop[True] = _percent(p)


def set_write_drop_percent(p: int) -> None:
    with _knobs.lock:
        _knobs.write_drop[False] = _knobs.write_drop[True] = _percent(p)


def reset_drop_percent() -> None:
    with _knobs.lock:
        _knobs.read_drop = {False: 0, True: 0}
        _knobs.write_drop = {False: 0, True: 0}


def set_delay_message_percent(p: int) -> None:
    with _knobs.lock:
        _knobs.delay = _percent(p)


def set_msg_shortening_percent(p: int) -> None:
    with _knobs.lock:
        _knobs.shorten = _percent(p)


def set_msg_lengthening_percent(p: int) -> None:
    with _knobs.lock:
        _knobs.lengthen = _percent(p)


def set_msg_corrupted(flag: bool) -> None:
    with _knobs.lock:
        _knobs.corrupt = bool(flag)


def start_sniff() -> None:
    with _knobs.lock:
        _knobs.sniff = SniffResult()


def stop_sniff() -> SniffResult:
    with _knobs.lock:
        result, _knobs.sniff = _knobs.sniff, None
    return result or SniffResult()


def start_middlebox(fn) -> None:
    with _knobs.lock:
        _knobs.middlebox = fn


def stop_middlebox() -> None:
    with _knobs.lock:
        _knobs.middlebox = None


def reset() -> None:
    with _knobs.lock:
        _knobs.reset()


# ---- delayed writes ---------------------------------------------------------------------------

class _Delayer:
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, action) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + DELAY_SECONDS, next(self._seq), action))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=DELAY_THREAD_NAME,
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                _, _, action = heapq.heappop(self._heap)
            action()


_delayer = _Delayer()


# ---- sockets ----------------------------------------------------------------------------------

class UDPConn:
    """A UDP socket with the fault knobs applied. `read_from`/`read` block (raise OSError after
    close); writes never block and never raise for a vanished peer."""

    def __init__(self, sock: socket.socket, is_server: bool, peer=None) -> None:
        self._sock = sock
        self.is_server = is_server
        self.peer = peer
        self.local_port = sock.getsockname()[1]
        self._closed = False

    def read_from(self) -> tuple[bytes, tuple]:
        """The next datagram that survives read drop, with its sender's address."""
        while True:
            try:
                data, addr = self._sock.recvfrom(MAX_DATAGRAM_BYTES)
            except ConnectionRefusedError:
                # An ICMP "port unreachable" for an earlier send (the server is not up yet):
                # not an error of this socket, which keeps listening.
                if self._closed:
                    raise
                continue
            if self._closed or addr is None:  # woken by close()'s shutdown
                raise OSError("lspnet: socket closed")
            if not self._dropped_on_read():
                return data, addr

    def read(self) -> bytes:
        return self.read_from()[0]

    def read_batch(self, limit: int = 64) -> list[tuple[bytes, tuple]]:
        """Block for one datagram, then take up to `limit - 1` more that are already waiting,
        without blocking (so a busy endpoint wakes its loop once per batch, not per datagram).
        """
        batch = [self.read_from()]
        while len(batch) < limit:
            try:
                data, addr = self._sock.recvfrom(MAX_DATAGRAM_BYTES, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError, ConnectionRefusedError):
                break
            if self._closed or addr is None:
                break
            if not self._dropped_on_read():
                batch.append((data, addr))
        return batch

    def _dropped_on_read(self) -> bool:
        """The read-drop decision for one datagram. The percentage is read without the lock
        first (a racing change is as if it had come a moment later): no lock per datagram
        while the knob is off."""
        if not _knobs.read_drop[self.is_server]:
            return False
        with _knobs.lock:
            return _knobs.chance(_knobs.read_drop[self.is_server])

    def write_to(self, data: bytes, addr) -> None:
        delayed = False
        if _knobs.delay:   # read without the lock first, as in _dropped_on_read
            with _knobs.lock:
                delayed = _knobs.chance(_knobs.delay)
        if delayed:
            _delayer.add(lambda: self._write_now(data, addr))
        else:
            self._write_now(data, addr)

    def write(self, data: bytes) -> None:
        self.write_to(data, self.peer)

    def close(self) -> None:
        """Close; a blocked read_from raises OSError. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            # Wakes a thread blocked in recvfrom, even on an unconnected UDP socket (Linux
            # reports ENOTCONN but still shuts the socket down).
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def _write_now(self, data: bytes, addr) -> None:
        if self._closed:
            return
        if _knobs.quiet():
            # No knob is on: skip decoding the datagram (the common case, and the fast one).
            try:
                if self.peer is not None:
                    self._sock.send(data)
                else:
                    self._sock.sendto(data, addr)
            except OSError:
                pass
            return
        try:
            message = decode(data)
        except MessageError:
            message = None  # not an LSP message (tests send garbage on purpose): no tampering
        with _knobs.lock:
            dropped = _knobs.chance(_knobs.write_drop[self.is_server])
            sniff = _knobs.sniff
            if sniff is not None and message is not None:
                _record(sniff, message, dropped, self.is_server)
            if dropped:
                return
            middlebox = _knobs.middlebox
            tamper = None
            if middlebox is None and message is not None and message.type == MsgType.DATA:
                if _knobs.chance(_knobs.shorten):
                    tamper = _shorten
                elif _knobs.chance(_knobs.lengthen):
                    tamper = _lengthen
                elif _knobs.corrupt:
                    tamper = _corrupt
        if message is not None and middlebox is not None:
            message = middlebox(message, self.is_server)
            if message is None:
                return
            data = encode(message)
        elif tamper is not None:
            data = encode(tamper(message))
        try:
            if self.peer is not None:
                self._sock.send(data)  # a client socket is connected to its server
            else:
                self._sock.sendto(data, addr)
        except OSError:
            pass  # a closed socket or an unreachable peer: UDP loses it, as the network would


def _record(sniff: SniffResult, message: Message, dropped: bool, from_server: bool) -> None:
    sniff.all_messages.append((message, dropped, from_server))
    if not dropped:
        sniff.sent_messages.append(message)
    if message.type == MsgType.DATA:
        if dropped:
            sniff.num_dropped_data += 1
        else:
            sniff.num_sent_data += 1
    elif message.type == MsgType.ACK:
        if dropped:
            sniff.num_dropped_acks += 1
        else:
            sniff.num_sent_acks += 1


def _shorten(message: Message) -> Message:
    payload = message.payload or b""
    return replace(message, payload=payload[:len(payload) // 2])


def _lengthen(message: Message) -> Message:
    return replace(message, payload=(message.payload or b"") + b"\x02\x03\x04")


def _corrupt(message: Message) -> Message:
    payload = message.payload or b""
    flipped = bytes([~payload[0] & 0xFF]) + payload[1:] if payload else b"\xff"
    return replace(message, payload=flipped)


def listen_udp(port: int, host: str = "127.0.0.1") -> UDPConn:
    """A server-side socket bound to host:port (0: a free port). Raises OSError if in use."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return UDPConn(sock, is_server=True)


def dial_udp(hostport: str, local_port: int = 0) -> UDPConn:
    """A client-side socket connected to 'host:port', from `local_port` (0: any; a fixed one
    lets a restarted client come back on the same port). Raises OSError if it cannot resolve
    or the local port is taken."""
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise OSError(f"bad address {hostport!r}: expected host:port")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if local_port:
            sock.bind(("", local_port))
        sock.connect((host or "127.0.0.1", int(port)))
    except OSError:
        sock.close()
        raise
    return UDPConn(sock, is_server=False, peer=sock.getpeername())
