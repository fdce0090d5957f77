"""Command line of P1 part B: `python -m miner server|miner|client ...`, the course's three
programs with their positional arguments and outputs, plus the LSP flags of `python -m lsp`.

Threads: the main thread runs the command (the server's main thread only waits for Ctrl-C or
SIGTERM), plus the threads of the MinerServer or LSP client it makes.
"""

from __future__ import annotations

import logging
import sys

import typer

from csp.cli import log_events, run, serve_until_interrupted, stop_on_sigterm
import lsp
from lsp import lspnet
from lsp.__main__ import ELIM, EMS, MAXBACKOFF, MAXUNACKED, RDROP, VERBOSE, WDROP, WSIZE
from miner import client as client_program
from miner import worker
from miner.server import MinerServer

app = typer.Typer(add_completion=False,
                  help="P1 part B: the distributed bitcoin miner (server, miner, client).")


def _setup(verbose: bool, rdrop: int, wdrop: int, elim: int, ems: int, wsize: int,
           maxunacked: int, maxbackoff: int, server_side: bool) -> lsp.Params:
    log_events(verbose, logging.INFO)
    stop_on_sigterm()
    if server_side:
        lspnet.set_server_read_drop_percent(rdrop)
        lspnet.set_server_write_drop_percent(wdrop)
    else:
        lspnet.set_client_read_drop_percent(rdrop)
        lspnet.set_client_write_drop_percent(wdrop)
    return lsp.Params(elim, ems, wsize, maxbackoff, maxunacked)


@app.command()
def server(
    port: int = typer.Argument(..., metavar="PORT", min=0, max=65535, help="UDP port (0: any free one)."),
    rdrop: int = RDROP, wdrop: int = WDROP, elim: int = ELIM, ems: int = EMS,
    wsize: int = WSIZE, maxunacked: int = MAXUNACKED, maxbackoff: int = MAXBACKOFF,
    verbose: bool = VERBOSE,
) -> None:
    """Split clients' requests among the miners that join; runs until Ctrl-C."""
    params = _setup(verbose, rdrop, wdrop, elim, ems, wsize, maxunacked, maxbackoff, True)
    try:
        srv = MinerServer(port, params)
    except OSError as exc:
        typer.echo(f"Failed to listen on port {port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1)
    typer.echo(f"Server listening on port {srv.port}")
    sys.stdout.flush()
    try:
        serve_until_interrupted()
    finally:
        srv.close()


@app.command()
def miner(
    hostport: str = typer.Argument(..., metavar="HOST:PORT", help="Server address."),
    rdrop: int = RDROP, wdrop: int = WDROP, elim: int = ELIM, ems: int = EMS,
    wsize: int = WSIZE, maxunacked: int = MAXUNACKED, maxbackoff: int = MAXBACKOFF,
    verbose: bool = VERBOSE,
) -> None:
    """Join the server and mine the ranges it sends, until the server is lost or Ctrl-C.

    Prints `joined HOST:PORT as miner (conn N)` once joined and `server lost: exiting` when
    the server is lost. Exit status 0 then: losing the server is how a miner's work ends (the
    course's miner shuts down the same way); 1 only when it cannot join."""
    params = _setup(verbose, rdrop, wdrop, elim, ems, wsize, maxunacked, maxbackoff, False)
    typer.echo(f"connecting to {hostport} (gives up after {elim} epochs of {ems} ms)...", err=True)
    try:
        conn = worker.connect(hostport, params)
    except (lsp.LSPError, ValueError) as exc:
        typer.echo(f"Failed to join with server: {exc}")
        raise typer.Exit(1)
    except KeyboardInterrupt:
        raise typer.Exit(130)
    try:
        worker.join(conn)
    except lsp.LSPError as exc:
        conn.close()
        typer.echo(f"Failed to join with server: {exc}")
        raise typer.Exit(1)
    typer.echo(f"joined {hostport} as miner (conn {conn.conn_id()})")
    try:
        worker.serve(conn)
        typer.echo("server lost: exiting")
    except KeyboardInterrupt:
        pass
    finally:
        conn.close()


@app.command()
def client(
    hostport: str = typer.Argument(..., metavar="HOST:PORT", help="Server address."),
    message: str = typer.Argument(..., metavar="MESSAGE", help="The message to hash with each nonce."),
    maxnonce: str = typer.Argument(..., metavar="MAXNONCE", help="The largest nonce to try (from 0)."),
    rdrop: int = RDROP, wdrop: int = WDROP, elim: int = ELIM, ems: int = EMS,
    wsize: int = WSIZE, maxunacked: int = MAXUNACKED, maxbackoff: int = MAXBACKOFF,
    verbose: bool = VERBOSE,
) -> None:
    """Print `Result <hash> <nonce>` for the minimum hash over nonces 0..MAXNONCE, or
    `Disconnected` if the server is lost first."""
    try:
        max_nonce = client_program.parse_max_nonce(maxnonce)
    except ValueError:
        typer.echo(f"{maxnonce} is not a number.")
        raise typer.Exit(1)
    params = _setup(verbose, rdrop, wdrop, elim, ems, wsize, maxunacked, maxbackoff, False)
    try:
        line = client_program.run_client(hostport, message, max_nonce, params)
    except (lsp.LSPError, ValueError) as exc:
        typer.echo(f"Failed to connect to server: {exc}")
        raise typer.Exit(1)
    except KeyboardInterrupt:
        raise typer.Exit(130)
    typer.echo(line)


if __name__ == "__main__":
    run(app, prog_name="python -m miner")
