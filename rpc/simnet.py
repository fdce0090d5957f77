"""simnet: the course's simulated network for tests (MIT labrpc, as the 15-440 `rpc` package
forks it), with the handout's numbers. No sockets: a call runs the handler on a thread of its
own, on a copy of the arguments made through the rpc codec, and returns a copy of the reply.

    net = Network(seed=None)
    end = net.make_end("a->b")          a client end, disabled and unconnected at first
    net.add_server("b", server)         server = Server(); server.add_service(obj, name=None)
    net.connect("a->b", "b"); net.enable("a->b", True)
    end.call("request_vote", args)      -> reply, or None (lost, disabled, server deleted)

`call(method, args)`: `method` is "Service.method", or a bare method name for the server's
first service (Raft's handlers are called as "request_vote" and "append_entries").
Per call, with the handout's numbers:
- disabled or unconnected end, or deleted server: nothing is delivered; None after a random
  0-6999 ms with long delays on (the Raft tester's setting), else 0-99 ms;
- unreliable: a random 0-26 ms before delivery; the request is lost with probability 10%;
  after the handler ran, the reply is lost with probability 10%;
- while the handler runs, every 100 ms: if the server was deleted or the end disabled, the
  reply is discarded (None);
- long reordering: with probability 600/900 a reply is held 200 + rand(0..rand(0..2000)) ms.
Counts: `get_count(server)` RPCs received by that server; `get_total_count()`;
`get_total_bytes()` bytes of arguments and replies carried (their codec form).
`cleanup()` ends the network: every call waiting in a delay returns None at once, later calls
return None at once. Calls raise only for a programming error, as labrpc's are fatal: an
unknown method (AttributeError) or arguments the codec refuses (rpc.EncodeError). A handler's
exception fails the handler's thread, as an uncaught panic would, and the call returns None.

Threads: none of its own. A call runs on the caller's thread plus one `simnet-handler` thread
that runs the handler. State (ends, servers, knobs, counts) is guarded by one lock; handlers
and delays run without it.
"""

from __future__ import annotations

import random
import threading

import csp
from rpc import codec

LONG_DELAY_MILLIS = 7000
SHORT_DELAY_MILLIS = 100
UNRELIABLE_DELAY_MILLIS = 27
LOSS_PERCENT = 10
CHECK_SECONDS = 0.1


class Server:
    """A set of services (receivers) reachable under one server name."""

    def __init__(self) -> None:
        self._services: dict[str, object] = {}
        self._lock = threading.Lock()

    def add_service(self, receiver, name: str | None = None) -> None:
        with self._lock:
            self._services[name or type(receiver).__name__] = receiver

    def _handler(self, method: str):
        with self._lock:
            if "." in method:
                service, _, name = method.partition(".")
                receiver = self._services.get(service)
            else:
                receiver = next(iter(self._services.values()), None)
                name = method
        if receiver is None or name.startswith("_"):
            return None
        handler = getattr(receiver, name, None)
        return handler if callable(handler) else None


class ClientEnd:
    """One end of a link; made by Network.make_end. `call` is thread-safe and blocks."""

    def __init__(self, network: "Network", name: str) -> None:
        self._network = network
        self.name = name

    def call(self, method: str, args):
        return self._network._call(self.name, method, args)


class Network:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._reliable = True
        self._long_delays = False
        self._long_reordering = False
        self._ends: dict[str, ClientEnd] = {}
        self._enabled: dict[str, bool] = {}
        self._connections: dict[str, str] = {}        # end name -> server name
        self._servers: dict[str, Server | None] = {}  # None: deleted
        self._counts: dict[str, int] = {}
        self._total_count = 0
        self._total_bytes = 0
        self._done = threading.Event()

    # ---- the tester's knobs -------------------------------------------------------------------

    def make_end(self, name: str) -> ClientEnd:
        with self._lock:
            if name in self._ends:
                raise ValueError(f"simnet: end {name!r} already exists")
            end = self._ends[name] = ClientEnd(self, name)
            self._enabled[name] = False
            return end

    def add_server(self, name: str, server: Server) -> None:
        with self._lock:
            self._servers[name] = server
            self._counts.setdefault(name, 0)

    def delete_server(self, name: str) -> None:
        with self._lock:
            self._servers[name] = None

    def connect(self, end_name: str, server_name: str) -> None:
        with self._lock:
            self._connections[end_name] = server_name

    def enable(self, end_name: str, enabled: bool) -> None:
        with self._lock:
            self._enabled[end_name] = enabled

    def reliable(self, yes: bool) -> None:
        with self._lock:
            self._reliable = yes

    def long_delays(self, yes: bool) -> None:
        with self._lock:
            self._long_delays = yes

    def long_reordering(self, yes: bool) -> None:
        with self._lock:
            self._long_reordering = yes

    def get_count(self, server_name: str) -> int:
        with self._lock:
            return self._counts.get(server_name, 0)

    def get_total_count(self) -> int:
        with self._lock:
            return self._total_count

    def get_total_bytes(self) -> int:
        with self._lock:
            return self._total_bytes

    def cleanup(self) -> None:
        """Every pending and later call returns None at once. Idempotent."""
        self._done.set()

    # ---- a call -------------------------------------------------------------------------------

    def _rand(self, below: int) -> int:
        with self._lock:
            return self._random.randrange(below) if below > 0 else 0

    def _sleep_millis(self, millis: int) -> bool:
        """False if the network was cleaned up meanwhile."""
        return not self._done.wait(millis / 1000)

    def _target(self, end_name: str):
        """(server name, server, reliable, long reordering, long delays) as of now."""
        with self._lock:
            server_name = self._connections.get(end_name)
            server = self._servers.get(server_name) if self._enabled[end_name] else None
            return server_name, server, self._reliable, self._long_reordering, self._long_delays

    def _alive(self, end_name: str, server_name: str, server: Server) -> bool:
        with self._lock:
            return self._enabled[end_name] and self._servers.get(server_name) is server

    def _call(self, end_name: str, method: str, args):
        if self._done.is_set():
            return None
        payload = codec.dumps(args)   # raises EncodeError for what cannot travel, as gob would
        server_name, server, reliable, reordering, long_delays = self._target(end_name)
        if server is None:
            limit = LONG_DELAY_MILLIS if long_delays else SHORT_DELAY_MILLIS
            self._sleep_millis(self._rand(limit))
            return None
        if not reliable:
            if not self._sleep_millis(self._rand(UNRELIABLE_DELAY_MILLIS)):
                return None
            if self._rand(100) < LOSS_PERCENT:
                return None
        handler = server._handler(method)
        with self._lock:
            self._counts[server_name] += 1
            self._total_count += 1
            self._total_bytes += len(payload)
        if handler is None:
            raise AttributeError(f"simnet: no method {method!r} on server {server_name!r}")
        outcome = csp.Chan(1)
        csp.go(_run_handler, handler, codec.loads(payload), outcome,
               name=f"simnet-handler:{server_name}")
        handler_done = csp.Recv(outcome)
        while True:
            case, value, _ = csp.select_case(handler_done, csp.Recv(csp.after(CHECK_SECONDS)))
            if self._done.is_set() or not self._alive(end_name, server_name, server):
                return None
            if case is handler_done:
                break
        ok, reply_payload = value
        if not ok:
            return None
        if not reliable and self._rand(100) < LOSS_PERCENT:
            return None
        with self._lock:
            self._total_bytes += len(reply_payload)
        if reordering and self._rand(900) < 600:
            if not self._sleep_millis(200 + self._rand(1 + self._rand(2000))):
                return None
        return codec.loads(reply_payload)


def _run_handler(handler, args, outcome: csp.Chan) -> None:
    try:
        reply = codec.dumps(handler(args))
    except BaseException:
        outcome.send((False, None))
        raise
    outcome.send((True, reply))
