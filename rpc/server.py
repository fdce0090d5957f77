"""The rpc server: `Server()`, Go's `rpc.NewServer` + `Register` + `Accept`, over TCP.

    server = rpc.Server()
    server.register(Arith())                  # serves "Arith.multiply", ... (public, one arg)
    server.register(teller, name="Remote", ordered=True)
    port = server.listen(0)                   # returns at once; also in server.port
    server.close()

The wire format (frames and envelopes) is described in `rpc.wire`. Per connection, frames
are read in order and each call is started in that order: a call of an ordinary service runs
on a worker of the server's pool (so a slow handler delays no other call, and replies go back
in whatever order handlers finish); the calls of an `ordered` service from one connection run
one at a time, in arrival order, on that connection's thread for the service. A handler's
exception, an unknown method or a reply the codec does not carry becomes an error reply (the
client raises RemoteError with the message). A malformed frame (a length over
MAX_FRAME_BYTES, bad JSON, an unknown type, a bad envelope) drops that connection only.

Threads (N is the port, C a connection number, W a worker number):
    rpc-server:N/loop     owns the connection table and the list of every worker thread;
                          selects over new connections, departures, requests for a new worker
                          and `self._life.stopping`. When close begins it shuts every
                          connection down, closes `_loop_done` (it takes nothing more), then
                          joins every connection's threads and every worker.
    rpc-server:N/accept   `csp.tcp.accept_loop`: blocks in accept(); hands each socket to the
                          loop.
    rpc-server:N/conn-C/reader   blocks in recv(); decodes each frame and starts its call: hands
                          it to an idle worker, else asks the loop for a new one; queues ordered
                          calls on the connection's thread for that service (which it starts
                          and owns). When the stream ends (peer gone, bad frame, close) it shuts
                          the socket down, closes the outgoing queue and the ordered queues,
                          joins its writer and ordered threads, reports its departure to the
                          loop, and only then closes the socket.
    rpc-server:N/conn-C/writer   `csp.tcp.write_batches`: drains the connection's outgoing
                          queue (reply frames) onto the socket, batching; the only thread that
                          writes to the socket.
    rpc-server:N/conn-C/<Service>  runs the connection's calls of an ordered service, in order.
    rpc-server:N/worker-W runs calls (any connection's) and queues each reply frame on its
                          connection; between calls it waits idle for the next (at most
                          MAX_IDLE_WORKERS wait; a worker finding them all there exits).
Calls already received when a connection ends still run (their replies are dropped), as in Go;
after close(), queued ordered calls are skipped. close() (`self._life.close_once`) shuts the
listener down, which ends the accept thread, and joins the loop: it returns once every thread
above is gone, so it waits for handlers still running (their replies are dropped).
Only channels and select synchronise these threads; the one lock guards service registration.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import socket
import threading

import csp
from csp import tcp
from rpc.errors import EncodeError, FrameError
from rpc.wire import WRITE_BATCH_BYTES, decode_request, error_frame, iter_frames, reply_frame

MAX_IDLE_WORKERS = 32

log = logging.getLogger("rpc.server")


class _Service:
    """A registered receiver: its name, its served methods (bound), and whether ordered."""

    __slots__ = ("name", "methods", "ordered")

    def __init__(self, name: str, methods: dict, ordered: bool) -> None:
        self.name = name
        self.methods = methods
        self.ordered = ordered


class _Conn:
    """One accepted connection; its fields are set once, then only read."""

    __slots__ = ("number", "sock", "outgoing", "writer")

    def __init__(self, number: int, sock: socket.socket) -> None:
        self.number = number
        self.sock = sock
        self.outgoing = csp.Chan(None)  # reply frames; closed by the reader when it ends
        self.writer: threading.Thread | None = None  # set before the reader starts


def served_methods(receiver) -> dict:
    """The methods of `receiver` that `Server.register` serves: the public ones (no leading
    underscore) taking exactly one positional argument, by name, bound."""
    methods = {}
    for name in dir(receiver):
        if name.startswith("_"):
            continue
        static = inspect.getattr_static(receiver, name)
        if not (inspect.isroutine(static) or isinstance(static, (staticmethod, classmethod))):
            continue  # properties and data attributes are never run here
        method = getattr(receiver, name)
        try:
            params = list(inspect.signature(method).parameters.values())
        except (TypeError, ValueError):
            continue  # a builtin without a signature
        if len(params) == 1 and params[0].kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                   inspect.Parameter.POSITIONAL_OR_KEYWORD):
            methods[name] = method
    return methods


class Server:
    """An rpc server. Thread-safe: `register` may be called at any time, before or after
    `listen`. `close()` is idempotent and returns when no server thread is left."""

    def __init__(self) -> None:
        self._services: dict[str, _Service] = {}  # replaced whole (copy on write), never mutated
        self._register_lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.port: int | None = None
        self._name = "rpc-server"
        self._connections = csp.Chan()   # accepted sockets, from the accept thread
        self._departures = csp.Chan()    # _Conn whose reader has finished with it
        self._spawns = csp.Chan()        # a job no idle worker took: the loop starts a worker
        self._jobs = csp.Chan()          # unbuffered: a send completes only to an idle worker
        self._idle = csp.Chan(MAX_IDLE_WORKERS)  # one token per idle worker
        self._life = csp.Lifecycle()
        self._loop_done = csp.Chan()     # closed by the loop once it has shut connections down
        self._loop_thread: threading.Thread | None = None
        self._accept_thread: threading.Thread | None = None

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- public API ------------------------------------------------------------------------

    def register(self, receiver, name: str | None = None, ordered: bool = False) -> None:
        """Serve every public one-argument method `m` of `receiver` as `"<name>.m"` (`name`
        defaults to the receiver's class name). With `ordered=True` the calls of this service
        from one connection run one at a time, in arrival order.

        Raises ValueError if the name is taken or invalid, or no method qualifies.
        """
        name = type(receiver).__name__ if name is None else name
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"rpc service name must be a non-empty str without '.': {name!r}")
        methods = served_methods(receiver)
        if not methods:
            raise ValueError(f"rpc.Server.register: {name} has no public method taking one "
                             "argument")
        with self._register_lock:
            if name in self._services:
                raise ValueError(f"rpc service {name!r} is already registered")
            services = dict(self._services)
            services[name] = _Service(name, methods, bool(ordered))
            self._services = services

    def listen(self, port: int = 0, host: str = "127.0.0.1") -> int:
        """Listen on `host:port` (0: a free port) and serve in the background; returns the port
        (also in `.port`). Does not block. Raises OSError when it cannot listen, RuntimeError
        if already listening or closed."""
        if self._listener is not None or self._life.is_stopping:
            raise RuntimeError("rpc.Server.listen: already listening or closed")
        listener = socket.create_server((host, port), backlog=128)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._name = f"rpc-server:{self.port}"
        self._loop_thread = csp.go(self._loop, name=f"{self._name}/loop")
        self._accept_thread = csp.go(tcp.accept_loop, listener, self._connections,
                                     self._loop_done, name=f"{self._name}/accept")
        log.debug("%s: listening on %s", self._name, host)
        return self.port

    def close(self) -> None:
        """Stop listening and drop every connection (their calls in flight end with
        ConnectionLost at the clients), then wait for running handlers and every server
        thread. Idempotent, thread-safe, never raises."""
        self._life.close_once(self._shut_down)

    def _shut_down(self) -> None:
        if self._listener is not None:
            tcp.close_listener(self._listener, self._accept_thread)
        if self._loop_thread is not None:
            self._loop_thread.join()  # it saw `stopping`, and joins every other thread
        log.debug("%s: closed", self._name)

    # ---- the loop ---------------------------------------------------------------------------

    def _loop(self) -> None:
        conns: dict[int, _Conn] = {}
        conn_threads: list = []
        workers: list = []
        conn_numbers = itertools.count(1)
        worker_numbers = itertools.count(1)
        spawn = csp.Recv(self._spawns)           # a job for a new worker
        accepted = csp.Recv(self._connections)   # a new socket
        departed = csp.Recv(self._departures)    # a _Conn whose reader is done with it
        stopping = csp.Recv(self._life.stopping)
        while True:
            case, value, _ = csp.select_case(spawn, accepted, departed, stopping)
            if case is stopping:
                break
            if case is spawn:
                workers = [t for t in workers if t.is_alive()]
                workers.append(csp.go(self._work, value,
                                      name=f"{self._name}/worker-{next(worker_numbers)}"))
            elif case is accepted:
                conn = _Conn(next(conn_numbers), value)
                conns[conn.number] = conn
                prefix = f"{self._name}/conn-{conn.number}"
                conn.writer = csp.go(tcp.write_batches, conn.sock, conn.outgoing,
                                     WRITE_BATCH_BYTES, name=f"{prefix}/writer")
                reader = csp.go(self._read, conn, name=f"{prefix}/reader")
                conn_threads = [t for t in conn_threads if t.is_alive()] + [conn.writer, reader]
                log.debug("%s: connection %d opened", self._name, conn.number)
            elif case is departed:
                del conns[value.number]
                log.debug("%s: connection %d gone", self._name, value.number)
        # A reader closes its socket only after its departure was taken or _loop_done is
        # closed, so every socket in `conns` is still open here.
        for conn in conns.values():
            tcp.shutdown(conn.sock)
        self._loop_done.close()
        for thread in conn_threads + workers:
            thread.join()

    # ---- per-connection threads -------------------------------------------------------------

    def _read(self, conn: _Conn) -> None:
        ordered: dict[str, tuple[csp.Chan, threading.Thread]] = {}
        how = "the peer closed it"
        try:
            for payload in iter_frames(conn.sock):
                self._start_call(conn, payload, ordered)
        except FrameError as exc:
            how = f"malformed frame: {exc}"
        finally:
            if self._life.is_stopping:
                how = "server closed"
            log.debug("%s: connection %d ends: %s", self._name, conn.number, how)
            tcp.shutdown(conn.sock)
            conn.outgoing.close()
            for queue, _ in ordered.values():
                queue.close()
            for _, thread in ordered.values():
                thread.join()
            conn.writer.join()
            csp.select(csp.Send(self._departures, conn), csp.Recv(self._loop_done))
            conn.sock.close()

    def _start_call(self, conn: _Conn, payload: bytes, ordered: dict) -> None:
        """Decode one request frame and start its call (FrameError if malformed)."""
        call_id, method, args = decode_request(payload)
        service_name, _, method_name = method.rpartition(".")
        service = self._services.get(service_name)
        handler = service.methods.get(method_name) if service is not None else None
        if handler is None:
            what = "service" if service is None else "method"
            conn.outgoing.send(error_frame(call_id, f"rpc: can't find {what} {method}"))
            return
        job = (conn, call_id, method, handler, args)
        if service.ordered:
            entry = ordered.get(service_name)
            if entry is None:
                queue = csp.Chan(None)  # unbounded: a slow ordered handler never stalls reading
                thread = csp.go(self._serve_ordered, queue,
                                name=f"{self._name}/conn-{conn.number}/{service_name}")
                entry = ordered[service_name] = (queue, thread)
            entry[0].send(job)
            return
        to_idle_worker = csp.Send(self._jobs, job)
        case, _, _ = csp.select_case(to_idle_worker, default=True)
        if case is not to_idle_worker:  # no idle worker: the loop starts one
            csp.select(csp.Send(self._spawns, job), csp.Recv(self._loop_done))

    # ---- running calls ----------------------------------------------------------------------

    def _work(self, job) -> None:
        count_idle = csp.Send(self._idle, None)
        next_job = csp.Recv(self._jobs)
        stopping = csp.Recv(self._life.stopping)
        while True:
            self._run(job)
            if self._life.is_stopping:
                return
            case, _, _ = csp.select_case(count_idle, default=True)
            if case is not count_idle:
                return  # enough idle workers already
            case, job, _ = csp.select_case(next_job, stopping)
            # Give a token back: this worker's own is still counted, so one is there to take.
            self._idle.recv()
            if case is stopping:
                return

    def _serve_ordered(self, queue: csp.Chan) -> None:
        for job in queue:
            if not self._life.is_stopping:
                self._run(job)

    def _run(self, job) -> None:
        conn, call_id, method, handler, args = job
        try:
            reply = handler(args)
        except Exception as exc:  # noqa: BLE001 - the handler's failure is the caller's answer
            log.debug("%s: %s raised", self._name, method, exc_info=True)
            frame = error_frame(call_id, f"{method}: {type(exc).__name__}: {exc}")
        else:
            try:
                frame = reply_frame(call_id, reply)
            except EncodeError as exc:
                frame = error_frame(call_id, f"{method}: the reply cannot be sent: {exc}")
        try:
            conn.outgoing.send(frame)  # unbounded: never blocks
        except csp.ChannelClosed:
            pass  # the connection has ended: nobody is waiting for this reply

