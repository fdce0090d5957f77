"""The miner process's loop and the client's one request: both LSP clients of the server.

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


def request(conn: lsp.Client, data: str, max_nonce: int) -> str:
    """Ask for the minimum hash over 0..max_nonce; returns the line the course's client prints:
    `Result <hash> <nonce>`, or `Disconnected` if the server is lost first."""
    try:
        conn.write(bitcoin.encode(bitcoin.new_request(data, 0, max_nonce)))
        while True:
            payload = conn.read()
            try:
                message = bitcoin.decode(payload)
            except bitcoin.BadMessage as exc:
                log.info("ignored a malformed message: %s", exc)
                continue
            if message.type == bitcoin.MsgType.RESULT:
                return f"Result {message.hash} {message.nonce}"
            log.info("ignored %s", message)
    except lsp.LSPError:
        return "Disconnected"
