"""The miner process (the course's miner.go): join the server, then mine each Request it sends.
The client's one request is miner/client.py.

Threads: the caller's thread runs the loop (plus the LSP client's own threads).
"""

from __future__ import annotations

import logging
import random

import lsp
from miner import bitcoin

log = logging.getLogger("miner")


def connect(hostport: str, params: lsp.Params | None = None) -> lsp.Client:
    """An LSP client with a random initial sequence number (0..255), as the course's are.
    Raises lsp.LSPError if the server cannot be reached."""
    return lsp.new_client(hostport, random.randrange(256), params)


def join(conn: lsp.Client) -> None:
    """Send the Join message (never blocks). Raises lsp.LSPError if the server is lost."""
    conn.write(bitcoin.encode(bitcoin.new_join()))


def serve(conn: lsp.Client) -> None:
    """Answer each Request with the minimum (hash, nonce) of its range, until the server is
    lost (returns; the caller closes `conn`). Other messages are ignored."""
    while True:
        try:
            payload = conn.read()
        except lsp.LSPError:
            log.info("lost the server")
            return
        try:
            message = bitcoin.decode(payload)
        except bitcoin.BadMessage as exc:
            log.info("ignored a malformed message: %s", exc)
            continue
        if message.type != bitcoin.MsgType.REQUEST or message.lower > message.upper:
            log.info("ignored %s", message)
            continue
        log.info("mining %s", message)
        hash_value, nonce = bitcoin.scan(message.data, message.lower, message.upper)
        try:
            conn.write(bitcoin.encode(bitcoin.new_result(hash_value, nonce)))
        except lsp.LSPError:
            log.info("lost the server")
            return

