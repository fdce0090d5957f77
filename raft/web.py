"""The live web picture of a local Raft cluster: `python -m raft cluster --web PORT`.

    view = WebView(addresses, processes, port=8080)   # serves http://127.0.0.1:8080/
    view.url
    view.close()

Any cluster of processes built on raft.node's NodeWatch (a Raft node, a kvraft replica) can be
shown: the page asks each node's "Watch" rpc service, and `submit` (a function of the typed
text) decides what the submit box does, `submit_hint` what it says, `title` the page's heading.

The page (raft/web/index.html, page.js, style.css: plain HTML, CSS and JavaScript drawing
SVG, nothing fetched from elsewhere) polls `GET /frame` every 150 ms and draws each node on a
ring (role, term, vote, election timer, alive / killed / paused / cut off), each node's log by
term with its commit index, the leader's next and match index per follower, and the RPCs the
nodes report (raft.events). Its buttons post the controls below; its timeline asks for older
frames to pause and scrub back through the last `history_seconds`.

HTTP endpoints (bad requests get a 4xx and a JSON {"error": "one line"}):
    GET  /  /page.js  /style.css     the page
    GET  /frame                      the newest frame (JSON, see _Picture.frame)
    GET  /frame?seq=N                an older one; 404 once it is out of the history
    POST /node/I/ACTION              ACTION: kill, restart, pause, resume (the processes
                                     object's), cut, heal (the node's fault switch, Watch.fault)
    POST /submit  {"command": "..."} commit a command through whoever leads (raft.client)

`processes` is the cluster's supervisor (raft.cluster.NodeProcesses, or anything alike):
`states() -> [{"process": "alive" | "paused" | "killed", "pid": int | None}]` per node, and
`control(node, action) -> message` for kill, restart, pause and resume, raising
ControlRefused when the action does not fit the node's state (a 409). Both must be
thread-safe: handler threads call them.

Threads (all end in close()):
    raft-web/poll-I    one per node: asks node I for Watch.view every POLL_SECONDS (its own rpc
                       client and event position) and hands the answer to the picture loop
    raft-web/picture   owns the picture: the newest view of each node, the recent events,
                       the frames of the timeline; makes a frame every FRAME_SECONDS and
                       answers the handlers' frame requests, all through channels
    raft-web/http      csp.web.WebServer's accept loop; one short-lived thread per request
                       (joined by close, which waits for a submit in progress)
close() is idempotent and thread-safe: it stops the server (joining the request threads), then
the picture loop and the pollers, and closes their clients.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import time
import urllib.parse

import csp
from csp.web import BadRequest, Routes, WebServer, json_answer
import rpc
from raft.node import Fault, View, ViewQuery

log = logging.getLogger("raft.web")

POLL_SECONDS = 0.1             # each node is asked this often (a paused node: at most this
VIEW_TIMEOUT_SECONDS = 0.5     # plus the call's timeout)
FRAME_SECONDS = 0.1
EVENT_WINDOW_MILLIS = 1500     # a frame carries the events of this last stretch
ANSWERING_MILLIS = 1000        # a node heard from within this is drawn as answering
FAULT_TIMEOUT_SECONDS = 2.0
SUBMIT_DEADLINE_SECONDS = 5.0
MAX_COMMAND_CHARS = 200
PROCESS_ACTIONS = ("kill", "restart", "pause", "resume")
FAULT_ACTIONS = {"cut": True, "heal": False}
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
STATIC_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
                "/index.html": ("index.html", "text/html; charset=utf-8"),
                "/page.js": ("page.js", "text/javascript; charset=utf-8"),
                "/style.css": ("style.css", "text/css; charset=utf-8")}


class ControlRefused(BadRequest):
    """The action does not fit the node's state now (kill a killed node ...): a 409."""

    def __init__(self, message: str) -> None:
        super().__init__(409, message)


# ---- pure rules: parsing requests and building frames -------------------------------------------

def parse_node_action(path: str, node_count: int) -> tuple[int, str]:
    """`/node/I/ACTION` -> (I, ACTION); BadRequest (404 for an unknown path, 400 for a bad
    node or action) otherwise."""
    match = re.fullmatch(r"/node/([^/]*)/([^/]*)", path)
    if not match:
        raise BadRequest(404, f"no such endpoint: POST {path}")
    node_text, action = match.groups()
    if not node_text.isdigit() or not 0 <= int(node_text) < node_count:
        raise BadRequest(400, f"no node {node_text!r}: nodes are 0 to {node_count - 1}")
    if action not in PROCESS_ACTIONS and action not in FAULT_ACTIONS:
        known = ", ".join(PROCESS_ACTIONS + tuple(FAULT_ACTIONS))
        raise BadRequest(400, f"no action {action!r}: want one of {known}")
    return int(node_text), action


def parse_frame_query(query: str) -> int | None:
    """The `seq` of `/frame?seq=N` (None: the newest); BadRequest(400) for anything else."""
    fields = urllib.parse.parse_qs(query, keep_blank_values=True)
    unknown = set(fields) - {"seq"}
    if unknown:
        raise BadRequest(400, f"/frame takes only seq, not {', '.join(sorted(unknown))}")
    if "seq" not in fields:
        return None
    values = fields["seq"]
    if len(values) != 1 or not values[0].isdigit():
        raise BadRequest(400, f"seq wants one whole number, not {values!r}")
    return int(values[0])


def parse_submit_body(body: bytes, content_type: str) -> str:
    """The command of a submit: JSON {"command": "..."} or a form `command=...`; BadRequest
    (400) if it is missing, empty, too long or not text."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, "the request body is not UTF-8") from None
    if content_type.startswith("application/json"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadRequest(400, f"the request body is not JSON: {exc}") from None
        command = document.get("command") if isinstance(document, dict) else None
    else:
        command = urllib.parse.parse_qs(text).get("command", [None])[0]
    if not isinstance(command, str) or not command.strip():
        raise BadRequest(400, 'submit wants a non-empty "command"')
    if len(command) > MAX_COMMAND_CHARS:
        raise BadRequest(400, f"a command is at most {MAX_COMMAND_CHARS} characters, "
                              f"not {len(command)}")
    return command


def node_picture(node_id: int, address: str, process: dict, view: dict | None,
                 heard_millis_ago: int | None) -> dict:
    """One node of a frame: its process state, whether it answers, its detailed status (None
    while killed or before it first answered) and its fault switch."""
    killed = process.get("process") == "killed"
    answering = (not killed and view is not None and heard_millis_ago is not None
                 and heard_millis_ago <= ANSWERING_MILLIS)
    return {"id": node_id, "address": address, "process": process.get("process", "alive"),
            "pid": process.get("pid"), "answering": answering,
            "heard_millis_ago": heard_millis_ago,
            "cut_off": bool(view and view["cut_off"]) and not killed,
            "status": None if killed or view is None else view["status"]}


def frame_leader(nodes: list[dict]) -> int | None:
    """The leader to name: of the answering nodes that say they lead, the one of the highest
    term (a cut-off old leader may still believe it leads, in an older term)."""
    leaders = [node for node in nodes if node["answering"] and node["status"]
               and node["status"]["role"] == "leader"]
    if not leaders:
        return None
    return max(leaders, key=lambda node: node["status"]["term"])["id"]


# ---- the picture loop ---------------------------------------------------------------------------

class _Picture:
    """The state raft-web/picture owns (nothing else touches it)."""

    def __init__(self, addresses: list[str], history_frames: int, submit_hint: str,
                 title: str, noun: str) -> None:
        self.addresses = addresses
        self.submit_hint = submit_hint
        self.title = title
        self.noun = noun
        self.views: list[dict | None] = [None] * len(addresses)
        self.heard_at: list[float | None] = [None] * len(addresses)
        self.events: collections.deque = collections.deque(maxlen=4000)
        self.frames: collections.deque = collections.deque(maxlen=history_frames)
        self.next_seq = 1

    def take_view(self, node_id: int, view: View | None) -> None:
        if view is None:
            return
        self.views[node_id] = {"status": view.status, "cut_off": view.cut_off}
        self.heard_at[node_id] = time.monotonic()
        for event in view.events:
            event["from"] = node_id
            self.events.append(event)

    def frame(self, processes: list[dict]) -> bytes:
        """The next frame, as JSON: seq, epoch_millis, nodes (node_picture), leader, events
        (those of the last EVENT_WINDOW_MILLIS, each with its "from" node), oldest_seq,
        submit_hint, title, noun."""
        now = time.monotonic()
        now_millis = int(time.time() * 1000)
        nodes = []
        for i, address in enumerate(self.addresses):
            heard = self.heard_at[i]
            ago = None if heard is None else int((now - heard) * 1000)
            process = processes[i] if i < len(processes) else {}
            nodes.append(node_picture(i, address, process, self.views[i], ago))
            if process.get("process") == "killed":
                # a restarted node is drawn from its first answer on
                self.views[i], self.heard_at[i] = None, None
        since = now_millis - EVENT_WINDOW_MILLIS
        while self.events and self.events[0]["epoch_millis"] < since - EVENT_WINDOW_MILLIS:
            self.events.popleft()
        events = sorted((event for event in self.events if event["epoch_millis"] >= since),
                        key=lambda event: event["epoch_millis"])
        seq = self.next_seq
        self.next_seq += 1
        oldest = self.frames[0][0] if self.frames else seq
        if len(self.frames) == self.frames.maxlen:
            oldest += 1
        body = json.dumps({"seq": seq, "epoch_millis": now_millis, "oldest_seq": oldest,
                           "submit_hint": self.submit_hint, "title": self.title,
                           "noun": self.noun,
                           "nodes": nodes, "leader": frame_leader(nodes),
                           "events": events}).encode()
        self.frames.append((seq, body))
        return body

    def find(self, seq: int | None) -> bytes:
        if not self.frames:
            raise BadRequest(503, "no frame yet: the picture is starting")
        if seq is None:
            return self.frames[-1][1]
        first = self.frames[0][0]
        if not first <= seq <= self.frames[-1][0]:
            raise BadRequest(404, f"frame {seq} is not kept: frames {first} to "
                                  f"{self.frames[-1][0]} are")
        return self.frames[seq - first][1]


class WebView:
    """Serves the page for the nodes at `addresses` (see the module docstring). Starts at
    once; OSError if the port is taken. close() is idempotent and thread-safe."""

    def __init__(self, addresses: list[str], processes, port: int = 0,
                 host: str = "127.0.0.1", history_seconds: float = 180.0,
                 submit=None, submit_hint: str = "a command",
                 title: str = "Raft cluster, live", noun: str = "node") -> None:
        """`submit(text) -> {"message": ...}` runs what the submit box sends, raising
        ControlRefused (a 409) when it cannot be done and BadRequest for text it does not take
        (default: commit the text as one command, `submit_raft_command`); `noun` names one
        process in messages and on the page ("node", "replica"); `title` heads the
        page (and names its tab)."""
        self.addresses = list(addresses)
        self._processes = processes
        self._submit = submit or (lambda text: submit_raft_command(self.addresses, text))
        self.submit_hint = submit_hint
        self.noun = noun
        self._life = csp.Lifecycle()
        self._views = csp.Chan(len(addresses))
        self._requests = csp.Chan()
        self._picture = _Picture(self.addresses, max(int(history_seconds / FRAME_SECONDS), 1),
                                 submit_hint, title, noun)
        self._server = WebServer((host, port), _routes_for(self), "raft.web")
        self.port = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}/"
        self._threads = [csp.go(self._poll, i, name=f"raft-web/poll-{i}")
                         for i in range(len(addresses))]
        self._threads.append(csp.go(self._run_picture, name="raft-web/picture"))

    def close(self) -> None:
        """Stop serving and polling; returns once every thread is gone."""
        self._life.close_once(self._shut_down)

    def _shut_down(self) -> None:
        self._server.stop()           # joins the request threads
        for thread in self._threads:
            thread.join()

    # ---- raft-web/poll-I -------------------------------------------------------------------

    def _poll(self, node_id: int) -> None:
        client: rpc.Client | None = None
        boot, after_seq = "", 0
        stopping = csp.Recv(self._life.stopping)
        try:
            while not self._life.is_stopping:
                view = None
                try:
                    if client is None:
                        client = rpc.dial(self.addresses[node_id],
                                          timeout=VIEW_TIMEOUT_SECONDS)
                    view = client.call("Watch.view", ViewQuery(after_seq, boot),
                                       timeout=VIEW_TIMEOUT_SECONDS)
                    boot, after_seq = view.boot, view.last_seq
                except rpc.CallTimeout:
                    pass            # paused, or slow: the client stays usable
                except rpc.RPCError:
                    if client is not None:
                        client.close()
                        client = None
                if view is not None:
                    handed, _, _ = csp.select_case(csp.Send(self._views, (node_id, view)),
                                                   stopping)
                    if handed is stopping:
                        return
                # Polling another process over rpc: no channel to wait on but the clock.
                csp.select_case(stopping, csp.Recv(csp.after(POLL_SECONDS)))
        finally:
            if client is not None:
                client.close()

    # ---- raft-web/picture ------------------------------------------------------------------

    def _run_picture(self) -> None:
        ticker = csp.Ticker(FRAME_SECONDS)
        views, tick = csp.Recv(self._views), csp.Recv(ticker.c)
        requests, stopping = csp.Recv(self._requests), csp.Recv(self._life.stopping)
        try:
            self._picture.frame(self._processes.states())
            while True:
                case, message, _ = csp.select_case(views, tick, requests, stopping)
                if case is stopping:
                    return
                if case is views:
                    self._picture.take_view(*message)
                elif case is tick:
                    self._picture.frame(self._processes.states())
                else:
                    seq, reply = message
                    try:
                        reply.send(self._picture.find(seq))
                    except BadRequest as exc:
                        reply.send(exc)
        finally:
            ticker.stop()

    def frame(self, seq: int | None = None) -> bytes:
        """A frame's JSON (the newest when `seq` is None), from the picture loop. BadRequest
        when it is not kept (404) or the view is closing (503). Blocks briefly; thread-safe."""
        reply = csp.Chan(1)
        stopping = csp.Recv(self._life.stopping)
        case, _, _ = csp.select_case(csp.Send(self._requests, (seq, reply)), stopping)
        if case is stopping:
            raise BadRequest(503, "the web view is closing")
        answer, _ = reply.recv()   # the loop answers every request it took
        if isinstance(answer, BadRequest):
            raise answer
        return answer

    # ---- controls, on request threads ------------------------------------------------------

    def control(self, node_id: int, action: str) -> str:
        """Run `action` on node `node_id`; the message to show. ControlRefused (409) when it
        does not fit; blocks up to FAULT_TIMEOUT_SECONDS for cut and heal."""
        if action in PROCESS_ACTIONS:
            return self._processes.control(node_id, action)
        cut_off = FAULT_ACTIONS[action]
        try:
            client = rpc.dial(self.addresses[node_id], timeout=FAULT_TIMEOUT_SECONDS)
            try:
                client.call("Watch.fault", Fault(cut_off), timeout=FAULT_TIMEOUT_SECONDS)
            finally:
                client.close()
        except rpc.RemoteError as exc:
            raise ControlRefused(f"{self.noun} {node_id} refused: {exc}") from None
        except rpc.RPCError as exc:
            raise ControlRefused(f"{self.noun} {node_id} did not answer ({exc}); is it killed "
                                 "or paused?") from None
        return f"{self.noun} {node_id} {'cut off from the others' if cut_off else 'healed'}"

    def submit(self, text: str) -> dict:
        """What the submit box sent, run by the `submit` function given (see __init__)."""
        return self._submit(text)


def submit_raft_command(addresses: list[str], command: str) -> dict:
    """Commit `command` through whoever leads, within SUBMIT_DEADLINE_SECONDS: {"index",
    "leader", "message"}; ControlRefused when no leader committed it."""
    from raft.client import NoLeader, submit
    try:
        index, leader = submit(addresses, [command], deadline_seconds=SUBMIT_DEADLINE_SECONDS)
    except NoLeader as exc:
        raise ControlRefused(str(exc)) from None
    return {"index": index, "leader": leader,
            "message": f"{command!r} committed at index {index} by node {leader}"}


def _routes_for(view: WebView) -> Routes:
    def get(path: str, query: str) -> tuple[int, str, bytes]:
        if path == "/frame":
            return 200, "application/json", view.frame(parse_frame_query(query))
        raise BadRequest(404, f"no such page: GET {path}")

    def post(path: str, query: str, body: bytes, content_type: str) -> tuple[int, str, bytes]:
        if path == "/submit":
            return json_answer(view.submit(parse_submit_body(body, content_type)))
        node_id, action = parse_node_action(path, len(view.addresses))
        return json_answer({"message": view.control(node_id, action)})

    return Routes(STATIC_DIR, STATIC_FILES, get, post, "GET the page and frames, POST controls")
