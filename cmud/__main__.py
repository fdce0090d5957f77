"""Command line of P3's store and game: `python -m cmud server|shell|status|play ...`."""

from __future__ import annotations

import json
import sys

import typer

from csp.cli import log_events, run, serve_until_interrupted, stop_on_sigterm

app = typer.Typer(add_completion=False,
                  help="P3: the geo-replicated store (servers, shell, status) and the CMUD game.")


def _hostport(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"expected HOST:PORT, got {text!r}")
    return text


@app.command()
def server(
    descs: list[str] = typer.Argument(None, help="The descs printed by servers started "
                                      "earlier (each a JSON string)."),
    port: int = typer.Option(6000, "--port", min=1, max=65535,
                             help="The actor system's port; query actor i listens on "
                             "PORT+1+i."),
    count: int = typer.Option(1, "--count", min=1, max=64, help="How many query actors."),
    desc_file: str = typer.Option("", "--desc-file",
                                  help="Also write this server's desc to this file."),
    latency_ms: int = typer.Option(0, "--latency-ms", min=0, max=60000,
                                   help="Artificial latency of every remote connection."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log one line per event."),
) -> None:
    """Run one storage server until Ctrl-C (the course's srunner)."""
    import actor
    from cmud.server import new_server, parse_desc, port_range_problem
    problem = port_range_problem(port, count)
    if problem:   # before anything opens: --port 65535 --count 2 would fail half-way
        raise typer.BadParameter(problem, param_hint="'--port' / '--count'")
    for desc in descs or []:
        try:
            parse_desc(desc)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="DESCS")
    log_events(verbose)
    actor.set_artificial_latency_ms(latency_ms)
    stop_on_sigterm()
    try:
        running, desc = new_server(port, count, list(descs or []))
    except ValueError as exc:   # checked above; kept so no ValueError becomes a traceback
        raise typer.BadParameter(str(exc))
    except (OSError, OverflowError) as exc:
        typer.echo(f"error: cannot start a server on ports {port}..{port + count}: {exc}",
                   err=True)
        raise typer.Exit(1)
    try:
        if desc_file:
            try:
                with open(desc_file, "w") as f:
                    f.write(desc + "\n")
            except OSError as exc:
                typer.echo(f"error: cannot write the desc to {desc_file}: {exc}", err=True)
                raise typer.Exit(1)
        typer.echo(f"actor system on {running.system.address}")
        for addr in running.query_addrs:
            typer.echo(f"query actor on {addr}")
        typer.echo(f"desc: {desc}")
        sys.stdout.flush()
        serve_until_interrupted()
    except KeyboardInterrupt:   # Ctrl-C before the wait began
        pass
    finally:
        running.close()


@app.command()
def shell(addr: str = typer.Argument(..., callback=_hostport,
                                     help="A query actor's HOST:PORT.")) -> None:
    """Get, put and list interactively (the course's crunner), one command a line: get KEY,
    put KEY VALUE (VALUE is the rest of the line and cannot be empty), list [PREFIX], help,
    quit. Fails at once (exit 1) when ADDR does not answer a query."""
    import rpc
    from cmud.client import Client, RoundRobinRouter
    from cmud import shell as shell_module
    client = Client(RoundRobinRouter([addr]))
    try:
        try:
            client.get("")   # a probe: a wrong or dead address fails now, not at the first query
        except rpc.RPCError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1)
        if sys.stdin.isatty():
            typer.echo(f"connected to {addr}; `help` lists the commands", err=True)
        raise typer.Exit(shell_module.run(client))
    finally:
        client.close()


@app.command()
def status(
    addrs: list[str] = typer.Argument(..., help="Query actors' HOST:PORT."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """A row per query actor: keys, Puts accepted, sync traffic in and out, and `last sync
    in`: how long ago it last received a sync message ("never", null in JSON, when it has
    received none, e.g. an actor that took every Put)."""
    from cmud.status import query_status, render_table
    rows = query_status([_hostport(a) for a in addrs])
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(render_table(rows))
    if any("error" in row for row in rows):
        raise typer.Exit(1)


@app.command(context_settings={"allow_interspersed_args": True})
def play(
    addrs: list[str] = typer.Argument(..., help="Query actors' HOST:PORT: the first is used, "
                                      "the next ones when a query fails."),
    time_scale: float = typer.Option(1.0, "--time-scale", min=0.0,
                                     help="Multiplies every pause of the story (0: none)."),
    seed: int = typer.Option(None, "--seed", help="Makes every roll repeatable."),
) -> None:
    """Play CMUD against the store."""
    from cmud import play as play_module
    raise typer.Exit(play_module.run([_hostport(a) for a in addrs], time_scale=time_scale,
                                     seed=seed))


if __name__ == "__main__":
    run(app, prog_name="python -m cmud")
