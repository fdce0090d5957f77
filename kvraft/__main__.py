"""Command line of the kvraft service: `python -m kvraft server|cluster|get|put|append|status
...`.

Threads: each command runs on the main thread; `server` starts a Replica, which runs its own
threads (see kvraft.server); get/put/append run a Clerk on the main thread, with a timer
thread of their own that closes it at --timeout. `cluster` runs its replicas as child
processes (raft.cluster.NodeProcesses) and polls them from the main thread; with `--web PORT` it
serves their live picture (raft.web.WebView, its own threads), whose request threads kill,
pause and restart the processes and run the submit box's put, append or get (kvraft.web, a
Clerk per request).
"""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

import csp
from csp.cli import log_events, run, serve_until_interrupted, stop_on_sigterm
from raft import cluster_options

app = typer.Typer(add_completion=False,
                  help="A linearizable key-value service on Raft (beyond the course: MIT "
                       "6.5840's lab 4 shape).")

PEERS = cluster_options.peers_option("replica")
TIMEOUT = typer.Option(30.0, "--timeout", min=0.1, help="Give up after this many seconds "
                       "without an answer (exit status 1).")
_peers = cluster_options.parse_peers_option


@app.command()
def server(
    replica_id: int = typer.Option(..., "--id", min=0, help="This replica's index in --peers."),
    peers: str = PEERS,
    data_dir: str = typer.Option(..., "--data-dir", help="Where this replica keeps its Raft "
                                 "state and snapshot (it restarts from them)."),
    max_raft_state: int = typer.Option(1 << 20, "--max-raft-state", min=1, help="Snapshot "
                                       "once the persisted Raft state (snapshot not counted) "
                                       "exceeds this many bytes."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log one line per event."),
    allow_faults: bool = typer.Option(False, "--allow-faults", hidden=True, help="Let the "
                                      "cluster command cut this replica off from its peers."),
) -> None:
    """Run one replica (its Raft peer and the key-value service on one port) until Ctrl-C or
    SIGTERM. Refuses to start on a damaged data directory, naming the file and offset."""
    from kvraft.server import Replica
    from raft.persister import CorruptStateError
    addresses = _peers(peers)
    if replica_id >= len(addresses):
        raise typer.BadParameter(f"--id {replica_id} but only {len(addresses)} peers",
                                 param_hint="--id")
    log_events(verbose)
    stop_on_sigterm()
    try:
        replica = Replica(replica_id, addresses, data_dir, max_raft_state,
                          allow_faults=allow_faults)
    except CorruptStateError as exc:
        typer.echo(f"error: refusing to start on damaged state: {exc}", err=True)
        raise typer.Exit(1)
    except OSError as exc:
        typer.echo(f"error: cannot start replica {replica_id} at {addresses[replica_id]}: "
                   f"{exc}", err=True)
        raise typer.Exit(1)
    typer.echo(f"replica {replica_id} serving on {addresses[replica_id]}")
    sys.stdout.flush()
    try:
        serve_until_interrupted()
    finally:
        replica.close()


@app.command()
def cluster(
    nodes: int = cluster_options.nodes_option(3, "replica"),
    data_dir: str = cluster_options.data_dir_option("replica"),
    seconds: float = cluster_options.SECONDS_OPTION,
    web_port: Optional[int] = cluster_options.web_option(
        "kill, pause, restart and cut off replicas, and a box for put, append and get"),
    web_host: str = cluster_options.WEB_HOST_OPTION,
    max_raft_state: int = typer.Option(1 << 20, "--max-raft-state", min=1, help="Each replica "
                                       "snapshots once its persisted Raft state exceeds this "
                                       "many bytes."),
) -> None:
    """Start a local cluster of replica processes and print each one's term and role as they
    change. First it prints each replica's id, address and PID (`kill -9 PID` crashes it), the
    --peers value for get, put and append, and where the state is (and with --web, the page's
    URL). Ctrl-C or SIGTERM stops the replicas and says where the state was."""
    from raft.cluster import run_local_cluster

    def replica_command(replica_id: int, peers: str, state_dir: str) -> list[str]:
        return [sys.executable, "-m", "kvraft", "server", "--id", str(replica_id), "--peers",
                peers, "--data-dir", state_dir, "--max-raft-state", str(max_raft_state),
                "--allow-faults"]
    run_local_cluster("kvraft", "replica", nodes, data_dir, seconds, replica_command,
                      lambda addresses: [_status(address, timeout_seconds=0.5)
                                         for address in addresses],
                      web_port, web_host, _web_view)


def _web_view(addresses: list[str], processes, port: int, host: str):
    from kvraft.web import SUBMIT_HINT, submit_kv_command
    from raft.web import WebView
    return WebView(addresses, processes, port=port, host=host,
                   submit=lambda text: submit_kv_command(addresses, text),
                   submit_hint=SUBMIT_HINT, title="kvraft cluster, live", noun="replica")


def _with_clerk(addresses: list[str], timeout: float, operation: str, act):
    """Run `act(clerk)`; after `timeout` seconds the clerk is closed and this exits 1."""
    from kvraft import BadRequest, Clerk, ClerkClosed
    clerk = Clerk(addresses)
    timer = csp.Timer(timeout)
    fired, closed_early = csp.Recv(timer.c), csp.Chan()
    watcher = csp.go(_close_at, clerk, fired, csp.Recv(closed_early),
                     name="kvraft-cli/timeout")
    try:
        return act(clerk)
    except ClerkClosed:
        typer.echo(f"error: no replica completed the {operation} within {timeout:g} s "
                   f"(peers {','.join(addresses)})", err=True)
        raise typer.Exit(1)
    except BadRequest as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    finally:
        timer.stop()
        closed_early.close()
        watcher.join()
        clerk.close()


def _close_at(clerk, fired: csp.Recv, done: csp.Recv) -> None:
    case, _, _ = csp.select_case(fired, done)
    if case is fired:
        clerk.close()


@app.command()
def get(key: str = typer.Argument(..., help="The key."), peers: str = PEERS,
        timeout: float = TIMEOUT) -> None:
    """Print KEY's value and a newline (an absent key prints an empty line)."""
    addresses = _peers(peers)
    typer.echo(_with_clerk(addresses, timeout, "get", lambda clerk: clerk.get(key)))


@app.command()
def put(key: str = typer.Argument(..., help="The key."),
        value: str = typer.Argument(..., help="Its new value."), peers: str = PEERS,
        timeout: float = TIMEOUT) -> None:
    """Set KEY to VALUE; prints nothing."""
    _with_clerk(_peers(peers), timeout, "put", lambda clerk: clerk.put(key, value))


@app.command()
def append(key: str = typer.Argument(..., help="The key."),
           value: str = typer.Argument(..., help="What to add at the end of its value."),
           peers: str = PEERS, timeout: float = TIMEOUT) -> None:
    """Append VALUE to KEY's value (an absent key counts as empty); prints nothing."""
    _with_clerk(_peers(peers), timeout, "append", lambda clerk: clerk.append(key, value))


def _status(address: str, timeout_seconds: float = 3.0):
    """The replica's Status, or a string saying why there is none."""
    import rpc
    from kvraft.messages import StatusQuery
    try:
        client = rpc.dial(address, timeout=min(timeout_seconds, 1.0))
    except (rpc.RPCError, OSError) as exc:
        return f"unreachable ({exc})"
    try:
        reply = client.call("KV.status", StatusQuery(), timeout=timeout_seconds)
    except rpc.RPCError as exc:
        return f"unreachable ({exc})"
    finally:
        client.close()
    return reply if reply is not None else "closing"


@app.command()
def status(
    peers: str = PEERS,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document: a list with "
                                 "an object per replica (an \"error\" member if it did not "
                                 "answer)."),
) -> None:
    """Print a table of every replica's id, role, term, commit index, applied index, snapshot
    index and key count, unreachable ones included. Exit status 1 when none answered."""
    import dataclasses
    addresses = _peers(peers)
    states = [_status(address) for address in addresses]
    if as_json:
        rows = [{"id": i, "address": address,
                 **({"error": state} if isinstance(state, str) else
                    {k: v for k, v in dataclasses.asdict(state).items() if k != "id"})}
                for i, (address, state) in enumerate(zip(addresses, states))]
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(f"{'id':>3}  {'role':<10} {'term':>5} {'commit':>7} {'applied':>8} "
                   f"{'snapshot':>9} {'keys':>6}")
        for i, state in enumerate(states):
            if isinstance(state, str):
                typer.echo(f"{i:>3}  {state}")
            else:
                typer.echo(f"{i:>3}  {state.role:<10} {state.term:>5} {state.commit_index:>7} "
                           f"{state.applied_index:>8} {state.snapshot_index:>9} "
                           f"{state.keys:>6}")
    if all(isinstance(state, str) for state in states):
        raise typer.Exit(1)


if __name__ == "__main__":
    run(app, prog_name="python -m kvraft")
