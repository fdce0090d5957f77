"""The miner's client (the course's client.go): check MAXNONCE, connect to the server, send one
Request for nonces 0..MAXNONCE and return the line to print for its Result.

Threads: the caller's thread runs the request (plus the LSP client's own threads).
"""

from __future__ import annotations

import logging
import random

import lsp
from miner import bitcoin

log = logging.getLogger("miner")

MAX_NONCE_LIMIT = (1 << 64) - 1   # the course's nonces are uint64


def parse_max_nonce(text: str) -> int:
    """MAXNONCE as the course's client reads it (Go's strconv.ParseUint(text, 10, 64)): ASCII
    digits only, no sign, space or underscore, at most 2**64 - 1. Raises ValueError otherwise
    (the command then prints `<text> is not a number.`)."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{text!r} is not a decimal number")
    value = int(text, 10)
    if not 0 <= value <= MAX_NONCE_LIMIT:
        raise ValueError(f"{text} is out of the range of a uint64")
    return value


def request(conn: lsp.Client, data: str, max_nonce: int) -> str:
    """Ask for the minimum hash over 0..max_nonce; returns the line the course's client prints:
    `Result <hash> <nonce>`, or `Disconnected` if the server is lost first. Messages other
    than a Result are ignored."""
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


def run_client(hostport: str, message: str, max_nonce: int,
               params: lsp.Params | None = None) -> str:
    """Connect to the server at `hostport` (an LSP client with a random initial sequence
    number, 0..255, as the course's are), make the one request and close; returns the line to
    print (`Result <hash> <nonce>` or `Disconnected`). Raises lsp.LSPError or ValueError if
    the server cannot be reached (the command prints `Failed to connect to server: ...`)."""
    conn = lsp.new_client(hostport, random.randrange(256), params)
    try:
        return request(conn, message, max_nonce)
    finally:
        conn.close()
