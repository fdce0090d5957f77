"""Command line of P0: `python -m kv server|client|load ...` (see --help of each).

Threads:
    server   the main thread waits for Ctrl-C or SIGTERM; the server runs its own threads
             (see kv.server).
    client   the main thread alone: it selects over standard input and the socket, so it
             notices the server closing the connection at once, even while nobody types.
    load     the main thread collects results and shows progress; kv.loadgen runs one thread
             per connection.
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys

import typer

from csp.cli import StatusLine, log_events, run, serve_until_interrupted
from kv.server import KeyValueServer
from kv.store import KVStore

app = typer.Typer(add_completion=False, help="P0: the key-value messaging server and clients.")


def parse_hostport(hostport: str) -> tuple[str, int]:
    """'host:port' -> (host, port), or a clear typer error."""
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"expected HOST:PORT, got {hostport!r}")
    return host, int(port)


@app.command()
def server(
    port: int = typer.Option(9999, min=0, max=65535, help="Port to listen on (0: any free one)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log one line per event."),
) -> None:
    """Run the key-value server until Ctrl-C."""
    log_events(verbose)
    kv_server = KeyValueServer(KVStore())
    try:
        kv_server.start(port, host=host)
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1)
    typer.echo(f"kv server listening on {host}:{kv_server.port}")
    sys.stdout.flush()
    try:
        serve_until_interrupted()  # Ctrl-C, or `kill`, as cleanly
    finally:
        active, dropped = kv_server.count_active(), kv_server.count_dropped()
        kv_server.close()
        typer.echo(f"closed ({active} clients connected, {dropped} disconnected)")


@app.command()
def client(hostport: str = typer.Argument(..., help="Server address, HOST:PORT.")) -> None:
    """Send the request lines typed on standard input; print the server's replies.

    Requests: Put:key:value, Get:key, Delete:key, Update:key:old:new. End with Ctrl-D: the
    client then prints the replies still due and exits 0. When the server closes the
    connection first, the client says so on standard error at once and exits 1.
    """
    host, port = parse_hostport(hostport)
    try:
        sock = socket.create_connection((host, port), timeout=5)
    except OSError as exc:
        typer.echo(f"error: cannot connect to {hostport}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1)
    hint = " (one request per line; Ctrl-D ends)" if sys.stdin.isatty() else ""
    typer.echo(f"connected to {host}:{port}{hint}", err=True)
    try:
        failure = relay(sock, sys.stdin.fileno(), sys.stdout.fileno())
    except KeyboardInterrupt:
        failure = None  # Ctrl-C: the user ends the session; nothing went wrong
    finally:
        sock.close()
    if failure:
        typer.echo(f"error: {failure}", err=True)
        raise typer.Exit(1)


CLIENT_CHUNK_BYTES = 64 * 1024
UNSENT_LIMIT_BYTES = 1 << 20  # stop reading standard input while this much waits to be sent


def relay(sock: socket.socket, input_fd: int, output_fd: int) -> str | None:
    """Send the bytes read from `input_fd` to `sock` and write what `sock` receives to
    `output_fd`, until the server closes the connection. Returns None when it closed after
    end of input (every reply received), or what went wrong: the server closed the
    connection while input was still open, the connection failed, or the output did.

    Blocks the calling thread (it alone does the work: one select over both descriptors).
    A last line without a newline gets one, so it is still a request. `sock` is left open.
    """
    sock.setblocking(False)
    unsent = bytearray()
    input_open = True
    input_ends_line = True   # the last byte read was a newline (or nothing was read)
    write_shut = False
    while True:
        readers = [sock]
        if input_open and len(unsent) < UNSENT_LIMIT_BYTES:
            readers.append(input_fd)
        readable, writable, _ = select.select(readers, [sock] if unsent else [], [])
        if sock in readable:
            try:
                data = sock.recv(CLIENT_CHUNK_BYTES)
            except BlockingIOError:
                data = None
            except OSError as exc:
                return _lost(exc)
            if data == b"":
                return None if write_shut else "server closed the connection"
            try:
                _write_all(output_fd, data or b"")
            except OSError as exc:
                return f"cannot write the replies: {exc.strerror or exc}"
        if input_fd in readable:
            try:
                data = os.read(input_fd, CLIENT_CHUNK_BYTES)
            except OSError:
                data = b""  # unreadable input ends the input
            if data:
                unsent += data
                input_ends_line = data.endswith(b"\n")
            else:
                input_open = False
                if not input_ends_line:
                    unsent += b"\n"
        if unsent:  # a non-blocking send: whatever fits now
            try:
                del unsent[:sock.send(unsent)]
            except BlockingIOError:
                pass
            except OSError as exc:
                return _lost(exc)
        if not input_open and not unsent and not write_shut:
            try:
                sock.shutdown(socket.SHUT_WR)  # the server sends what is due, then closes
            except OSError as exc:
                return _lost(exc)
            write_shut = True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _lost(exc: OSError) -> str:
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return "server closed the connection"
    return f"connection lost: {exc.strerror or exc}"


@app.command()
def load(
    hostport: str = typer.Argument(..., help="Server address, HOST:PORT."),
    clients: int = typer.Option(10, min=1, max=1000, help="Concurrent connections."),
    seconds: float = typer.Option(5.0, min=0.1, help="How long to run."),
    pipeline: int = typer.Option(64, min=1, max=10000, help="Requests in flight per client."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead of "
                                 "the result line: address, clients, pipeline, seconds, "
                                 "operations, ops_per_s."),
) -> None:
    """Pipeline Put/Get requests from CLIENTS connections; print operations per second.

    On a terminal a progress line shows the operations so far while the load runs; piped,
    only the result line (or the JSON document) is printed."""
    host, port = parse_hostport(hostport)
    from kv.loadgen import run_load  # noqa: PLC0415 - only this command needs it
    with StatusLine() as status:

        def show(operations: int, elapsed: float) -> None:
            rate = operations / elapsed if elapsed > 0 else 0.0
            status.show(f"{elapsed:4.1f}/{seconds:g} s  {operations:,} operations  "
                        f"{rate:,.0f} ops/s")

        try:
            result = run_load(host, port, clients, seconds, pipeline,
                              progress=show if status.is_live else None)
        except OSError as exc:
            typer.echo(f"error: cannot load {hostport}: {exc.strerror or exc}", err=True)
            raise typer.Exit(1)
    rate = result.operations / result.seconds
    if as_json:
        typer.echo(json.dumps({"address": f"{host}:{port}", "clients": clients,
                               "pipeline": pipeline, "seconds": round(result.seconds, 3),
                               "operations": result.operations, "ops_per_s": round(rate, 1)},
                              indent=2))
    else:
        typer.echo(f"{result.operations} operations in {result.seconds:.2f} s from {clients} "
                   f"clients: {rate:,.0f} ops/s")


if __name__ == "__main__":
    run(app, prog_name="python -m kv")
