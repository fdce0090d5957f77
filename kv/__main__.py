"""Command line of P0: `python -m kv server|client|load ...` (see --help of each)."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import time

import typer

import csp
from kv.server import KeyValueServer
from kv.store import KVStore

app = typer.Typer(add_completion=False, help="P0: the key-value messaging server and clients.")


def parse_hostport(hostport: str) -> tuple[str, int]:
    """'host:port' -> (host, port), or a clear typer error."""
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"expected HOST:PORT, got {hostport!r}")
    return host, int(port)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@app.command()
def server(
    port: int = typer.Option(9999, min=0, max=65535, help="Port to listen on (0: any free one)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log one line per event."),
) -> None:
    """Run the key-value server until Ctrl-C."""
    if verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    kv_server = KeyValueServer(KVStore())
    try:
        kv_server.start(port, host=host)
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1)
    typer.echo(f"kv server listening on {host}:{kv_server.port}")
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl-C
    try:
        csp.Chan().recv()  # until Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        active, dropped = kv_server.count_active(), kv_server.count_dropped()
        kv_server.close()
        typer.echo(f"closed ({active} clients connected, {dropped} dropped)")


@app.command()
def client(hostport: str = typer.Argument(..., help="Server address, HOST:PORT.")) -> None:
    """Send the request lines typed on standard input; print the server's replies.

    Requests: Put:key:value, Get:key, Delete:key, Update:key:old:new. End with Ctrl-D.
    """
    host, port = parse_hostport(hostport)
    try:
        sock = socket.create_connection((host, port), timeout=5)
    except OSError as exc:
        typer.echo(f"error: cannot connect to {hostport}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1)
    sock.settimeout(None)

    def print_replies() -> None:
        with sock.makefile("rb") as replies:
            for line in replies:
                sys.stdout.write(line.decode("utf-8", "replace"))
                sys.stdout.flush()

    printer = csp.go(print_replies, name="kv-client/printer")
    try:
        for line in sys.stdin.buffer:
            sock.sendall(line if line.endswith(b"\n") else line + b"\n")
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        typer.echo(f"error: connection lost: {exc.strerror or exc}", err=True)
    try:
        sock.shutdown(socket.SHUT_WR)  # the server sends what is pending, then closes
    except OSError:
        pass
    printer.join(10)
    sock.close()


@app.command()
def load(
    hostport: str = typer.Argument(..., help="Server address, HOST:PORT."),
    clients: int = typer.Option(10, min=1, max=1000, help="Concurrent connections."),
    seconds: float = typer.Option(5.0, min=0.1, help="How long to run."),
    pipeline: int = typer.Option(64, min=1, max=10000, help="Requests in flight per client."),
) -> None:
    """Pipeline Put/Get requests from CLIENTS connections; print operations per second.

    On a terminal a progress line shows the operations so far while the load runs; piped,
    only the result line is printed."""
    host, port = parse_hostport(hostport)
    from kv.loadgen import run_load  # noqa: PLC0415 - only this command needs it
    live = sys.stdout.isatty()

    def show(operations: int, elapsed: float) -> None:
        rate = operations / elapsed if elapsed > 0 else 0.0
        sys.stdout.write(f"\r\033[K{elapsed:4.1f}/{seconds:g} s  {operations:,} operations  "
                         f"{rate:,.0f} ops/s")
        sys.stdout.flush()

    try:
        result = run_load(host, port, clients, seconds, pipeline,
                          progress=show if live else None)
    except OSError as exc:
        typer.echo(f"error: {exc.strerror or exc}", err=True)
        raise typer.Exit(1)
    finally:
        if live:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()
    typer.echo(f"{result.operations} operations in {result.seconds:.2f} s from {clients} "
               f"clients: {result.operations / result.seconds:,.0f} ops/s")


if __name__ == "__main__":
    app(prog_name="python -m kv")
