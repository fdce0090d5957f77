"""Command line of the Raft nodes: `python -m raft node|cluster|submit|status ...`.

Threads: each command runs on the main thread; `node` starts a Node, which runs its own
threads (see raft.node); `cluster` runs its nodes as child processes and polls them, and with
`--web PORT` serves their live picture (raft.web, its own threads), whose request threads
kill, pause and restart the processes through raft.cluster.NodeProcesses (one mutex).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Optional

import typer

from csp.cli import log_events, run, serve_until_interrupted, stop_on_sigterm
from raft import cluster_options

app = typer.Typer(add_completion=False,
                  help="P2: Raft nodes as processes over TCP, with files that survive crashes.")

PEERS = cluster_options.peers_option("node")
_peers = cluster_options.parse_peers_option


@app.command()
def node(
    node_id: int = typer.Option(..., "--id", min=0, help="This node's index in --peers."),
    peers: str = PEERS,
    data_dir: str = typer.Option("", "--data-dir", help="Where this node keeps its state."),
    in_memory: bool = typer.Option(False, "--in-memory", help="Keep the state in memory only "
                                   "(a crash loses it; for measuring what durability costs)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log one line per event."),
    allow_faults: bool = typer.Option(False, "--allow-faults", hidden=True, help="Let the "
                                      "cluster command cut this node off from its peers."),
) -> None:
    """Run one node until Ctrl-C or SIGTERM; restarts from its file in --data-dir."""
    from raft.node import Node
    from raft.persister import CorruptStateError
    addresses = _peers(peers)
    if not data_dir and not in_memory:
        raise typer.BadParameter("give --data-dir (or --in-memory)", param_hint="--data-dir")
    if node_id >= len(addresses):
        raise typer.BadParameter(f"--id {node_id} but only {len(addresses)} peers",
                                 param_hint="--id")
    log_events(verbose)
    stop_on_sigterm()
    try:
        running = Node(node_id, addresses, None if in_memory else data_dir,
                       allow_faults=allow_faults)
    except CorruptStateError as exc:
        typer.echo(f"error: refusing to start on damaged state: {exc}", err=True)
        raise typer.Exit(1)
    except OSError as exc:
        typer.echo(f"error: cannot start node {node_id} at {addresses[node_id]}: {exc}",
                   err=True)
        raise typer.Exit(1)
    state = running.raft.status()
    typer.echo(f"node {node_id} listening on {addresses[node_id]}, term {state['term']}, "
               f"{state['last_index']} log entries restored")
    sys.stdout.flush()
    try:
        serve_until_interrupted()
    finally:
        running.close()


@app.command()
def cluster(
    nodes: int = cluster_options.nodes_option(5, "node"),
    data_dir: str = cluster_options.data_dir_option("node"),
    seconds: float = cluster_options.SECONDS_OPTION,
    web_port: Optional[int] = cluster_options.web_option(
        "kill, pause, restart and cut off nodes and to submit commands"),
    web_host: str = cluster_options.WEB_HOST_OPTION,
) -> None:
    """Start a local cluster of node processes and print each node's term and role as they
    change. First it prints each node's id, address and PID (`kill -9 PID` crashes that node)
    and where the state is (and with --web, the page's URL). On a terminal a status line below
    them shows the leader, how many nodes answer and the time; piped, only the change lines
    are printed."""
    from raft.client import status
    from raft.cluster import run_local_cluster
    from raft.web import WebView

    def node_command(node_id: int, peers: str, state_dir: str) -> list[str]:
        return [sys.executable, "-m", "raft", "node", "--id", str(node_id), "--peers", peers,
                "--data-dir", state_dir, "--allow-faults"]
    run_local_cluster("raft", "node", nodes, data_dir, seconds, node_command, status, web_port,
                      web_host, lambda addresses, processes, port, host:
                      WebView(addresses, processes, port=port, host=host))


@app.command()
def submit(
    command: str = typer.Argument(..., help="The command (a string) to commit."),
    peers: str = PEERS,
    wait_seconds: float = typer.Option(15.0, "--wait-seconds", min=0.1, help="How long to "
                                       "wait for a leader to commit it."),
) -> None:
    """Commit COMMAND through whoever leads; print the index it committed at. While no leader
    is known, say so on standard error; exit status 1 when none committed it in time."""
    from raft.client import NoLeader, submit as submit_commands
    addresses = _peers(peers)

    def say_waiting(answer: str) -> None:
        peers_text = "1 peer" if len(addresses) == 1 else f"{len(addresses)} peers"
        typer.echo(f"waiting for a leader among {peers_text} (up to {wait_seconds:g} s; "
                   f"{answer}) ...", err=True)

    try:
        index, leader = submit_commands(addresses, [command], deadline_seconds=wait_seconds,
                                        on_wait=say_waiting)
    except NoLeader as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    typer.echo(f"committed at index {index} (leader: node {leader})")


@app.command()
def status(
    peers: str = PEERS,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document: a list with "
                                 "an object per node (an \"error\" member if it did not "
                                 "answer)."),
) -> None:
    """Print a table of every node's id, role, term, commit index and last log index. Exit
    status 1 when no node answered."""
    from raft.client import status as cluster_status
    addresses = _peers(peers)
    states = cluster_status(addresses)
    if as_json:
        rows = [{"id": i, "address": address,
                 **({"error": state} if isinstance(state, str) else dataclasses.asdict(state))}
                for i, (address, state) in enumerate(zip(addresses, states))]
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(f"{'id':>3}  {'role':<10} {'term':>5} {'commit':>7} {'last':>7}  leader")
        for i, state in enumerate(states):
            if isinstance(state, str):
                typer.echo(f"{i:>3}  {state}")
            else:
                typer.echo(f"{i:>3}  {state.role:<10} {state.term:>5} {state.commit_index:>7} "
                           f"{state.last_index:>7}  "
                           f"{'-' if state.leader is None else state.leader}")
    if all(isinstance(state, str) for state in states):
        raise typer.Exit(1)

if __name__ == "__main__":
    run(app, prog_name="python -m raft")
