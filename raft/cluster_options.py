"""The options the command lines of raft and kvraft both declare: --peers and its parsing
(`peers_option`, `parse_peers_option`), and the `cluster` commands' --nodes, --data-dir,
--seconds, --web, --web-host; worded for the command's noun ("node", "replica"). A module of
its own, with little but typer, so that a command line imports no more than it needs.

Threads: none.
"""

from __future__ import annotations

import typer

MAX_NODES = 15


def peers_option(noun: str):
    return typer.Option(..., "--peers", help=f"Every {noun}'s host:port, comma-separated, the "
                        "same order everywhere.")


def parse_peers_option(text: str) -> list[str]:
    """--peers' addresses; a usage error (naming --peers) when `text` is not a list of
    host:port."""
    from raft.client import parse_peers
    try:
        return parse_peers(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--peers")


def nodes_option(default: int, noun: str):
    return typer.Option(default, "--nodes", min=1, max=MAX_NODES,
                        help=f"How many {noun} processes.")


def data_dir_option(noun: str):
    return typer.Option("", "--data-dir", help=f"Where the {noun}s keep their state, kept at "
                        "exit (default: a new temporary directory, removed at exit).")


def web_option(buttons: str):
    """--web; `buttons` finishes "with buttons to ..." for this command's page."""
    return typer.Option(None, "--web", min=0, max=65535, help="Also serve a live picture of the "
                        "cluster at http://WEB_HOST:WEB_PORT/ (0: any free port), with buttons "
                        f"to {buttons}.")


SECONDS_OPTION = typer.Option(0, "--seconds", min=0, help="Stop after this long (0: until "
                              "Ctrl-C).")
WEB_HOST_OPTION = typer.Option("127.0.0.1", "--web-host",
                               help="The address the --web page listens on.")
