"""The miner server: an LSP server whose one loop feeds every event to the `Scheduler` and
performs the actions it returns.

Threads:
    miner-server/loop   owns the Scheduler and the role of each connection (miner or
                        client); blocks on `lsp.Server.read()` (LSP writes never block, so the
                        loop needs no other channel). Stops when the LSP server is closed.
    (the LSP server's own reader and loop threads; see lsp.server)

A connection's first message decides its role: Join makes it a miner, Request a client.
Messages that do not fit the role (a miner's Request, a client's Join or Result, undecodable
payloads, a Request with Lower > Upper) are logged and ignored; a client's bad request gets its
connection closed, since no answer will ever come.
"""

from __future__ import annotations

import logging
import time

import csp
import lsp
from miner import bitcoin
from miner.scheduler import Answer, Dispatch, Scheduler

log = logging.getLogger("miner")


class MinerServer:
    """Serves miners and clients on `port` (0: any; see `.port`). `close()` is idempotent,
    stops the loop and joins it."""

    def __init__(self, port: int, params: lsp.Params | None = None,
                 scheduler: Scheduler | None = None, host: str = "127.0.0.1") -> None:
        self._lsp = lsp.new_server(port, params, host=host)
        self.port = self._lsp.port
        self._scheduler = scheduler or Scheduler()
        self._closed = False
        self._thread = csp.go(self._loop, name="miner-server/loop")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._lsp.close()
        self._thread.join()

    def wait(self) -> None:
        """Blocks until the loop stops (after close(), or the LSP server failing)."""
        self._thread.join()

    def _loop(self) -> None:
        server = self._lsp
        scheduler = self._scheduler
        roles: dict[int, str] = {}
        while True:
            try:
                conn_id, payload = server.read()
            except lsp.ConnectionLost as lost:
                role = roles.pop(lost.conn_id, None)
                log.info("%s %d lost", role or "connection", lost.conn_id)
                if role == "miner":
                    self._perform(scheduler.miner_lost(lost.conn_id, time.monotonic()))
                elif role == "client":
                    self._perform(scheduler.client_lost(lost.conn_id, time.monotonic()))
                continue
            except lsp.LSPError:
                return
            try:
                message = bitcoin.decode(payload)
            except bitcoin.BadMessage as exc:
                log.info("conn %d: ignored a malformed message: %s", conn_id, exc)
                continue
            role = roles.setdefault(conn_id, {bitcoin.MsgType.JOIN: "miner",
                                              bitcoin.MsgType.REQUEST: "client"}.get(message.type, ""))
            now = time.monotonic()
            if role == "miner" and message.type == bitcoin.MsgType.JOIN:
                log.info("miner %d joined", conn_id)
                self._perform(scheduler.miner_joined(conn_id, now))
            elif role == "miner" and message.type == bitcoin.MsgType.RESULT:
                self._perform(scheduler.result(conn_id, message.hash, message.nonce, now))
            elif role == "client" and message.type == bitcoin.MsgType.REQUEST:
                if message.lower > message.upper:
                    log.info("client %d: empty range %d..%d; closing it", conn_id,
                             message.lower, message.upper)
                    self._close_conn(conn_id)
                    continue
                log.info("client %d requests %s", conn_id, message)
                self._perform(scheduler.request(conn_id, message.data, message.lower,
                                                message.upper, now))
            else:
                if role == "":
                    roles.pop(conn_id, None)
                log.info("conn %d (%s): ignored %s", conn_id, role or "no role", message)

    def _perform(self, actions: list) -> None:
        for action in actions:
            if type(action) is Dispatch:
                log.info("dispatch %s %d..%d to miner %d", action.data, action.lower,
                         action.upper, action.miner)
                message = bitcoin.new_request(action.data, action.lower, action.upper)
                target = action.miner
            else:
                assert type(action) is Answer
                log.info("answer client %d: %d %d", action.client, action.hash, action.nonce)
                message = bitcoin.new_result(action.hash, action.nonce)
                target = action.client
            try:
                self._lsp.write(target, bitcoin.encode(message))
            except lsp.LSPError:
                pass  # lost: read() reports it and the scheduler reassigns or drops the work

    def _close_conn(self, conn_id: int) -> None:
        try:
            self._lsp.close_conn(conn_id)
        except lsp.LSPError:
            pass
