"""Command line of P1 part A: `python -m lsp server|client ...`, the course's srunner and
crunner: an echo server and an interactive echo client, with the course's flags.

Threads:
- server: the main thread reads and echoes (plus the LSP server's own threads, and with
  `--web` those of lsp.web.WindowView).
- client: the main thread runs the session loop and owns the `EchoTally` (lines sent, echoes
  printed); `lsp-client/stdin` reads standard input and hands each line to the loop;
  `lsp-client/printer` blocks in `Client.read()` and hands each echo (then the error that
  ended the reads) to the loop, which prints it. Both readers are daemon threads.
"""

from __future__ import annotations

import os
import random
import sys
from typing import Optional

import typer

import csp
from csp.cli import log_events, run, stop_on_sigterm
import lsp
from lsp import lspnet

app = typer.Typer(add_completion=False, help="P1: the Live Sequence Protocol echo server and client.")

RDROP = typer.Option(0, "--rdrop", min=0, max=100, help="Read drop percent (this side).")
WDROP = typer.Option(0, "--wdrop", min=0, max=100, help="Write drop percent (this side).")
ELIM = typer.Option(5, "--elim", min=1, help="Epoch limit.")
EMS = typer.Option(2000, "--ems", min=1, help="Epoch length in milliseconds.")
WSIZE = typer.Option(1, "--wsize", min=1, help="Window size.")
MAXUNACKED = typer.Option(1, "--maxunacked", "--maxUnackMessages", min=0,
                          help="Maximum unacknowledged messages in flight.")
MAXBACKOFF = typer.Option(0, "--maxbackoff", min=0, help="Maximum backoff interval (epochs).")
VERBOSE = typer.Option(False, "--verbose", "-v", help="Log one line per event.")


def _setup(verbose: bool) -> None:
    log_events(verbose)
    stop_on_sigterm()


@app.command()
def server(
    port: int = typer.Option(9999, "--port", min=0, max=65535, help="UDP port (0: any)."),
    rdrop: int = RDROP, wdrop: int = WDROP, elim: int = ELIM, ems: int = EMS,
    wsize: int = WSIZE, maxunacked: int = MAXUNACKED, maxbackoff: int = MAXBACKOFF,
    verbose: bool = VERBOSE,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print each message."),
    web_port: Optional[int] = typer.Option(
        None, "--web", min=0, max=65535, metavar="PORT",
        help="Also serve a live picture of every connection's sliding window at "
        "http://127.0.0.1:PORT/ (0: any free port)."),
    web_host: str = typer.Option("127.0.0.1", "--web-host", help="The address the --web page "
                                 "listens on."),
) -> None:
    """Echo every message back to the client that sent it, until Ctrl-C."""
    _setup(verbose)
    params = lsp.Params(elim, ems, wsize, maxbackoff, maxunacked)
    try:
        srv = lsp.new_server(port, params)
    except OSError as exc:
        typer.echo(f"error: cannot listen on UDP port {port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1)
    lspnet.set_server_read_drop_percent(rdrop)
    lspnet.set_server_write_drop_percent(wdrop)
    typer.echo(f"lsp echo server listening on 127.0.0.1:{srv.port} ({params})")
    view = None
    if web_port is not None:
        from lsp.web import WindowView
        try:
            view = WindowView(srv, web_port, web_host)
        except OSError as exc:
            srv.close()
            typer.echo(f"error: cannot serve the web view on {web_host}:{web_port}: "
                       f"{exc.strerror or exc}", err=True)
            raise typer.Exit(1)
        typer.echo(f"window view at {view.url}")
    sys.stdout.flush()
    try:
        while True:
            try:
                conn_id, payload = srv.read()
            except lsp.ConnectionLost as lost:
                typer.echo(f"client {lost.conn_id} lost")
                continue
            if not quiet:
                typer.echo(f"client {conn_id}: {payload.decode('utf-8', 'replace')}")
            try:
                srv.write(conn_id, payload)
            except lsp.ConnectionLost:
                pass
    except (KeyboardInterrupt, lsp.LSPError):
        pass
    finally:
        if view is not None:
            view.close()
        srv.close()


class EchoTally:
    """What the echo client has sent and got back; pure (no I/O, no threads).

    LSP delivers the echoes of lines sent in order, in order, so counting is enough: the
    session is complete once input has ended and every line sent has come back."""

    def __init__(self) -> None:
        self.sent = 0
        self.echoed = 0
        self.input_ended = False

    def line_sent(self) -> None:
        self.sent += 1

    def echo_received(self) -> None:
        self.echoed += 1

    def end_of_input(self) -> None:
        self.input_ended = True

    @property
    def missing(self) -> int:
        return self.sent - self.echoed

    @property
    def complete(self) -> bool:
        return self.input_ended and self.missing == 0

    def shortfall(self, reason: str) -> str:
        """The one-line error for a session cut short by `reason`."""
        if self.missing:
            return f"error: {self.missing} of {self.sent} echoes missing: {reason}"
        return f"error: {reason} (all {self.sent} echoes received)"


def _describe(exc: lsp.LSPError) -> str:
    return "connection lost" if isinstance(exc, lsp.ConnectionLost) else str(exc)


@app.command()
def client(
    hostport: str = typer.Argument(..., help="Server address, HOST:PORT."),
    rdrop: int = RDROP, wdrop: int = WDROP, elim: int = ELIM, ems: int = EMS,
    wsize: int = WSIZE, maxunacked: int = MAXUNACKED, maxbackoff: int = MAXBACKOFF,
    verbose: bool = VERBOSE,
) -> None:
    """Send each line typed on standard input; print each echo. At end of input, wait for
    every echo (or for the connection to be declared lost); exit 1 if any is missing."""
    _setup(verbose)
    params = lsp.Params(elim, ems, wsize, maxbackoff, maxunacked)
    lspnet.set_client_read_drop_percent(rdrop)
    lspnet.set_client_write_drop_percent(wdrop)
    typer.echo(f"connecting to {hostport} (gives up after {elim} epochs of {ems} ms)...", err=True)
    try:
        cli = lsp.new_client(hostport, random.randrange(256), params)
    except lsp.LSPError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted while connecting", err=True)
        raise typer.Exit(130)
    typer.echo(f"connected to {hostport} as connection {cli.conn_id()}", err=True)
    status = _echo_session(cli, ems)
    raise typer.Exit(status)


def _echo_session(cli: lsp.Client, epoch_millis: int) -> int:
    """Run the echo client's loop on the calling thread until input has ended and every echo
    came back, or the connection is lost, or Ctrl-C; closes `cli`. Returns the exit status."""
    lines = csp.Chan()      # stdin reader -> loop: each non-empty line; closed at end of input
    echoes = csp.Chan()     # echo reader -> loop: each echo (bytes), then the LSPError that ended reads
    quit = csp.Chan()       # loop -> both readers: closed when the loop is done
    csp.go(_read_lines, sys.stdin.fileno(), lines, quit, name="lsp-client/stdin")
    echo_reader = csp.go(_read_echoes, cli, echoes, quit, name="lsp-client/printer")
    tally = EchoTally()
    status = 0
    echoed = csp.Recv(echoes)
    try:
        while not tally.complete:
            typed = csp.Recv(None if tally.input_ended else lines)
            case, value, ok = csp.select_case(typed, echoed)
            if case is typed and not ok:
                tally.end_of_input()
            elif case is typed:
                tally.line_sent()
                try:
                    cli.write(value)
                except lsp.LSPError:
                    # Lost: the echo reader reports it once the echoes already here are read.
                    tally.end_of_input()
            elif case is echoed and isinstance(value, lsp.LSPError):
                typer.echo(tally.shortfall(_describe(value)), err=True)
                status = 1
                break
            elif case is echoed:
                tally.echo_received()
                typer.echo(value.decode("utf-8", "replace"))
    except KeyboardInterrupt:
        typer.echo(tally.shortfall("interrupted") if tally.missing else "interrupted", err=True)
        status = 130
    quit.close()
    cli.close()
    # read() raises once the client is closed; the bound only guards against a read that
    # blocks on after close (the contract allows one epoch). The thread is a daemon either way.
    echo_reader.join(max(1.0, 2 * epoch_millis / 1000))
    # The stdin reader may stay blocked in a read nobody can interrupt (a terminal with no
    # input); it is a daemon thread and ends with the process.
    return status


def _read_lines(fd: int, lines: csp.Chan, quit: csp.Chan) -> None:
    """Send each non-empty line read from file descriptor `fd` (bytes, newline removed) on
    `lines`; close `lines` at end of input. Stops without closing once `quit` is closed.

    Reads the descriptor with os.read rather than through sys.stdin: a daemon thread blocked
    inside sys.stdin's buffered reader holds its lock, and the interpreter aborts at exit when
    it cannot take that lock."""
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        if chunk:
            *complete, pending = (pending + chunk).split(b"\n")
        else:
            complete, pending = [pending], b""
        for raw in complete:
            text = raw.rstrip(b"\r")
            if not text:
                continue
            handed = csp.Send(lines, text)
            case, _, _ = csp.select_case(handed, csp.Recv(quit))
            if case is not handed:
                return
        if not chunk:
            lines.close()
            return


def _read_echoes(cli: lsp.Client, echoes: csp.Chan, quit: csp.Chan) -> None:
    """Send each payload `cli.read()` returns on `echoes`, then the LSPError that ended the
    reads; stops once `quit` is closed."""
    while True:
        try:
            value = cli.read()
        except lsp.LSPError as exc:
            value = exc
        handed = csp.Send(echoes, value)
        case, _, _ = csp.select_case(handed, csp.Recv(quit))
        if case is not handed or isinstance(value, lsp.LSPError):
            return


if __name__ == "__main__":
    run(app, prog_name="python -m lsp")
