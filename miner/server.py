"""The miner server: an LSP server whose one loop feeds every event to `ServerRules` (the role of
each connection, and the `Scheduler`) and performs the actions they return.

Threads:
    miner-server/loop   owns the ServerRules (and through them the Scheduler); blocks on
                        `lsp.Server.read()` (LSP writes never block, so the loop needs no
                        other channel, not even `_life.stopping`: close() closes the LSP
                        server, whose read() then raises). Stops when the LSP server is
                        closed.
    (the LSP server's own reader and loop threads; see lsp.server)

A connection's first message decides its role: Join makes it a miner, Request a client.
Messages that do not fit the role (a miner's Request, a client's Join or Result, undecodable
payloads, a Request with Lower > Upper) are logged and ignored; a client's bad request gets its
connection closed, since no answer will ever come.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import csp
import lsp
from miner import bitcoin
from miner.scheduler import Answer, Dispatch, Scheduler

log = logging.getLogger("miner")

_ROLE_OF_FIRST_MESSAGE = {bitcoin.MsgType.JOIN: "miner", bitcoin.MsgType.REQUEST: "client"}


@dataclass(frozen=True)
class CloseConn:
    """Close the LSP connection `conn` (its client sent a request that has no answer)."""
    conn: int


class ServerRules:
    """What the miner server does with each LSP event, as a pure object (no sockets, threads or
    clocks: `now` comes from the caller). Not thread-safe: the server's loop owns it. Returns
    the Scheduler's `Dispatch`/`Answer` actions and `CloseConn`, in the order to perform them,
    and logs one line per event worth a line.

    What is kept per connection id, and until when (so that nothing keeps an id once its
    connection has ended): a miner's role from its Join until it is lost; a client's role from
    its first Request until it is lost (whether or not it was answered: a client whose requests
    were all answered is logged as done, one lost with requests pending as lost) or until its
    connection is closed for a bad request; the number of a client's unanswered requests
    while it is not zero; the Scheduler keeps a miner until it is lost and a request until it
    is answered or its client lost. A connection whose first message gives it no role is not
    remembered.
    """

    def __init__(self, scheduler: Scheduler | None = None) -> None:
        self.scheduler = scheduler or Scheduler()
        self._roles: dict[int, str] = {}        # conn id -> "miner" | "client"
        self._unanswered: dict[int, int] = {}   # client conn id -> requests not answered (> 0)

    # ---- what the loop and tests may look at ------------------------------------------------

    @property
    def connections(self) -> int:
        """Connections with a role (miners and clients not yet lost)."""
        return len(self._roles)

    @property
    def clients_waiting(self) -> int:
        """Clients with at least one request not answered."""
        return len(self._unanswered)

    # ---- events ------------------------------------------------------------------------------

    def message(self, conn_id: int, payload: bytes, now: float) -> list:
        """A payload that LSP connection `conn_id` sent."""
        try:
            message = bitcoin.decode(payload)
        except bitcoin.BadMessage as exc:
            log.info("conn %d: ignored a malformed message: %s", conn_id, exc)
            return []
        role = self._roles.get(conn_id)
        if role is None:
            role = _ROLE_OF_FIRST_MESSAGE.get(message.type)
            if role is None:
                log.info("conn %d (no role): ignored %s", conn_id, message)
                return []
            self._roles[conn_id] = role
        if role == "miner" and message.type == bitcoin.MsgType.JOIN:
            log.info("miner %d joined", conn_id)
            return self._answered(self.scheduler.miner_joined(conn_id, now))
        if role == "miner" and message.type == bitcoin.MsgType.RESULT:
            return self._answered(self.scheduler.result(conn_id, message.hash, message.nonce,
                                                        now))
        if role == "client" and message.type == bitcoin.MsgType.REQUEST:
            if message.lower > message.upper:
                log.info("client %d: empty range %d..%d; closing it", conn_id,
                         message.lower, message.upper)
                return self._close(conn_id, now)
            log.info("client %d requests %s", conn_id, message)
            self._unanswered[conn_id] = self._unanswered.get(conn_id, 0) + 1
            return self._answered(self.scheduler.request(conn_id, message.data, message.lower,
                                                         message.upper, now))
        log.info("conn %d (%s): ignored %s", conn_id, role, message)
        return []

    def lost(self, conn_id: int, now: float) -> list:
        """LSP reported connection `conn_id` lost (for a client, also its normal end: the
        course's client closes its connection once it has its answer)."""
        role = self._roles.pop(conn_id, None)
        pending = self._unanswered.pop(conn_id, 0)
        if role == "miner":
            log.info("miner %d lost", conn_id)
            return self._answered(self.scheduler.miner_lost(conn_id, now))
        if role == "client" and pending:
            log.info("client %d lost", conn_id)
            return self._answered(self.scheduler.client_lost(conn_id, now))
        if role == "client":
            log.info("client %d done (disconnected after its answer)", conn_id)
            return []
        log.info("connection %d lost", conn_id)
        return []

    # ---- the rules ---------------------------------------------------------------------------

    def _close(self, conn_id: int, now: float) -> list:
        """Forget a client whose connection we close ourselves: LSP will not report it."""
        self._roles.pop(conn_id, None)
        pending = self._unanswered.pop(conn_id, 0)
        actions = self.scheduler.client_lost(conn_id, now) if pending else []
        return self._answered(actions) + [CloseConn(conn_id)]

    def _answered(self, actions: list) -> list:
        for action in actions:
            if type(action) is Answer:
                left = self._unanswered.get(action.client, 0) - 1
                if left > 0:
                    self._unanswered[action.client] = left
                else:
                    self._unanswered.pop(action.client, None)
        return actions


class MinerServer:
    """Serves miners and clients on `port` (0: any; see `.port`). Thread-safe."""

    def __init__(self, port: int, params: lsp.Params | None = None,
                 scheduler: Scheduler | None = None, host: str = "127.0.0.1") -> None:
        self._lsp = lsp.new_server(port, params, host=host)
        self.port = self._lsp.port
        self._rules = ServerRules(scheduler)
        self._life = csp.Lifecycle()
        self._thread = csp.go(self._loop, name="miner-server/loop")

    def close(self) -> None:
        """Close the LSP server (which first delivers what was written to miners and clients),
        which stops the loop; returns once the loop has ended. Idempotent; never raises."""
        self._life.close_once(self._shut_down)

    def _shut_down(self) -> None:
        self._lsp.close()   # read() raises LSPError from now on: the loop returns
        self._thread.join()

    def _loop(self) -> None:
        rules = self._rules
        while True:
            try:
                conn_id, payload = self._lsp.read()
            except lsp.ConnectionLost as lost:
                self._perform(rules.lost(lost.conn_id, time.monotonic()))
                continue
            except lsp.LSPError:
                return
            self._perform(rules.message(conn_id, payload, time.monotonic()))

    def _perform(self, actions: list) -> None:
        for action in actions:
            if type(action) is CloseConn:
                try:
                    self._lsp.close_conn(action.conn)
                except lsp.LSPError:
                    pass
                continue
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
