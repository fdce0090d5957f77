"""The live web view of a Raft cluster (raft.web), over HTTP without a browser: the rules that
read requests and build frames, the nodes' event rings and fault switch, a WebView in front of
in-process nodes (frames, controls, 4xx answers), and `python -m raft cluster --web` killing
and restarting real node processes from its page's endpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from raft.client import local_addresses
from raft.events import EventRing
from raft.node import Node
from raft.cluster import NodeProcesses
from raft.web import (BadRequest, ControlRefused, WebView, frame_leader,
                      node_picture, parse_frame_query, parse_node_action, parse_submit_body)
from tests.processes import ROOT, http, pid_alive, read_until, stop

DEADLINE_SECONDS = 60   # process starts and elections on a loaded machine included


# ---- pure rules ------------------------------------------------------------------------------

def test_node_actions_are_read_from_the_path():
    assert parse_node_action("/node/2/kill", 3) == (2, "kill")
    assert parse_node_action("/node/0/heal", 3) == (0, "heal")


@pytest.mark.parametrize("path, status, words", [
    ("/node/3/kill", 400, "nodes are 0 to 2"),
    ("/node/-1/kill", 400, "no node '-1'"),
    ("/node/x/kill", 400, "no node 'x'"),
    ("/node/1/explode", 400, "no action 'explode'"),
    ("/nodes/1/kill", 404, "no such endpoint"),
    ("/node/1/kill/now", 404, "no such endpoint"),
])
def test_bad_node_actions_are_refused_with_a_message(path, status, words):
    with pytest.raises(BadRequest, match=words) as refused:
        parse_node_action(path, 3)
    assert refused.value.status == status


def test_frame_queries():
    assert parse_frame_query("") is None
    assert parse_frame_query("seq=12") == 12
    for query in ("seq=", "seq=-1", "seq=1.5", "seq=1&seq=2", "frame=3"):
        with pytest.raises(BadRequest) as refused:
            parse_frame_query(query)
        assert refused.value.status == 400


def test_submit_bodies_json_or_form():
    assert parse_submit_body(b'{"command": "x=1"}', "application/json") == "x=1"
    assert parse_submit_body(b"command=hello+there", "application/x-www-form-urlencoded") \
        == "hello there"
    for body, content_type in [(b"{", "application/json"), (b'{"command": ""}',
                               "application/json"), (b'{"command": 5}', "application/json"),
                               (b"[1]", "application/json"), (b"", "text/plain"),
                               (b"\xff", "application/json"),
                               (json.dumps({"command": "x" * 201}).encode(), "application/json")]:
        with pytest.raises(BadRequest) as refused:
            parse_submit_body(body, content_type)
        assert refused.value.status == 400, body


def _status(role: str, term: int) -> dict:
    return {"role": role, "term": term}


def test_a_killed_node_is_drawn_without_its_last_state():
    view = {"status": _status("leader", 3), "cut_off": True}
    killed = node_picture(1, "h:1", {"process": "killed", "pid": 7}, view, 10)
    assert killed["status"] is None and not killed["answering"] and not killed["cut_off"]
    alive = node_picture(1, "h:1", {"process": "alive", "pid": 7}, view, 10)
    assert alive["status"]["role"] == "leader" and alive["answering"] and alive["cut_off"]
    silent = node_picture(1, "h:1", {"process": "paused", "pid": 7}, view, 5000)
    assert silent["status"] is not None and not silent["answering"]


def test_the_named_leader_is_the_answering_one_of_the_highest_term():
    def node(i, role, term, answering=True):
        return {"id": i, "answering": answering, "status": _status(role, term)}
    assert frame_leader([node(0, "leader", 2), node(1, "leader", 3), node(2, "follower", 3)]) == 1
    assert frame_leader([node(0, "leader", 4, answering=False), node(1, "follower", 4)]) is None
    assert frame_leader([{"id": 0, "answering": False, "status": None}]) is None


# ---- the event ring --------------------------------------------------------------------------

def test_event_ring_numbers_events_and_keeps_the_newest():
    ring = EventRing(capacity=3)
    assert ring.since(0) == (0, [])
    for i in range(5):
        ring.add(kind="call", rpc="AppendEntries", to=i)
    last, events = ring.since(0)
    assert last == 5 and [event["seq"] for event in events] == [3, 4, 5]
    assert [event["to"] for event in ring.since(3)[1]] == [3, 4]
    assert ring.since(5)[1] == []
    assert [event["seq"] for event in ring.since(99)[1]] == [3, 4, 5]   # an older boot's seq
    assert all(isinstance(event["epoch_millis"], int) for event in events)
    with pytest.raises(ValueError):
        EventRing(capacity=0)


# ---- a WebView in front of in-process nodes --------------------------------------------------

class AllAlive:
    """The processes object of nodes that live in this process: always alive, no signals."""

    def __init__(self, count: int) -> None:
        self.count = count

    def states(self) -> list[dict]:
        return [{"process": "alive", "pid": None}] * self.count

    def control(self, node_id: int, action: str) -> str:
        raise ControlRefused(f"node {node_id} runs in the test's process: no {action}")


def wait_for_frame(base_url: str, holds, what: str, seconds: float = DEADLINE_SECONDS) -> dict:
    """The first frame for which holds(frame) is true; fails after `seconds`."""
    deadline = time.monotonic() + seconds
    frame = None
    while time.monotonic() < deadline:
        status, frame = http(base_url + "frame")
        if status == 200 and holds(frame):
            return frame
        time.sleep(0.05)   # polling the page as a browser does
    raise AssertionError(f"no frame with {what} within {seconds} s; last: {frame}")


def leader_of(frame: dict) -> int | None:
    leaders = [node["id"] for node in frame["nodes"]
               if node["answering"] and node["status"] and node["status"]["role"] == "leader"]
    return leaders[0] if len(leaders) == 1 else None


@pytest.fixture
def in_process_cluster(tmp_path):
    addresses = local_addresses(3)
    nodes = [Node(i, addresses, str(tmp_path), allow_faults=True) for i in range(3)]
    view = WebView(addresses, AllAlive(3))
    try:
        yield nodes, view
    finally:
        view.close()
        for node in nodes:
            node.close()


def test_the_page_and_its_files_are_served(in_process_cluster):
    _, view = in_process_cluster
    status, page = http(view.url)
    assert status == 200 and '<script src="/page.js">' in page and "<svg" in page
    for name in ("page.js", "style.css"):
        status, text = http(view.url + name)
        assert status == 200 and text
    assert view.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("method, path, status", [
    ("GET", "nothing", 404), ("GET", "frame?seq=x", 400), ("GET", "frame?seq=99999999", 404),
    ("POST", "node/7/kill", 400), ("POST", "node/0/dance", 400), ("POST", "frame", 404),
    ("PUT", "frame", 405), ("DELETE", "node/0/kill", 405), ("POST", "submit", 400),
])
def test_bad_requests_get_a_4xx_with_a_message(in_process_cluster, method, path, status):
    _, view = in_process_cluster
    got, body = http(view.url + path, method=method)
    assert got == status and isinstance(body, dict) and body["error"], body
    assert "\n" not in body["error"]


def test_frames_show_every_node_one_leader_and_its_rpcs(in_process_cluster):
    nodes, view = in_process_cluster
    frame = wait_for_frame(view.url, lambda f: leader_of(f) is not None, "one leader")
    leader = leader_of(frame)
    assert frame["leader"] == leader and len(frame["nodes"]) == 3 and frame["noun"] == "node"
    status = frame["nodes"][leader]["status"]
    assert status["voted_for"] == leader and status["election_millis_left"] is None
    assert len(status["next_index"]) == len(status["match_index"]) == 3
    follower = frame["nodes"][(leader + 1) % 3]["status"]
    assert follower["role"] == "follower" and follower["election_millis_left"] is not None
    frame = wait_for_frame(view.url, lambda f: any(
        e["from"] == leader and e["rpc"] == "AppendEntries" and e["kind"] == "reply"
        for e in f["events"]), "the leader's heartbeats answered")
    # older frames stay for the timeline
    status, old = http(view.url + f"frame?seq={frame['oldest_seq']}")
    assert status == 200 and old["seq"] == frame["oldest_seq"]


def test_submit_and_cut_off_a_leader_then_heal_it(in_process_cluster):
    nodes, view = in_process_cluster
    frame = wait_for_frame(view.url, lambda f: leader_of(f) is not None, "one leader")
    status, body = http(view.url + "submit", "POST", {"command": "first"})
    assert status == 200, body
    index = body["index"]
    wait_for_frame(view.url, lambda f: all(n["status"]["commit_index"] >= index
                                           for n in f["nodes"]), "the command committed")
    old = leader_of(frame)
    status, body = http(view.url + f"node/{old}/cut", "POST")
    assert status == 200 and "cut off" in body["message"]
    frame = wait_for_frame(view.url, lambda f: f["leader"] not in (None, old) and
                           f["nodes"][old]["cut_off"], "a new leader beside the cut-off one")
    new_term = frame["nodes"][frame["leader"]]["status"]["term"]
    status, body = http(view.url + f"node/{old}/heal", "POST")
    assert status == 200 and "healed" in body["message"]
    wait_for_frame(view.url, lambda f: f["nodes"][old]["status"]["role"] == "follower" and
                   f["nodes"][old]["status"]["term"] >= new_term and
                   not f["nodes"][old]["cut_off"], "the healed old leader following")
    status, body = http(view.url + "node/0/kill", "POST")
    assert status == 409 and "no kill" in body["error"]


def test_a_node_not_started_by_the_cluster_command_takes_no_faults_and_close_is_idempotent(
        tmp_path):
    addresses = local_addresses(1)
    node = Node(0, addresses, str(tmp_path))
    view = WebView(addresses, AllAlive(1))
    try:
        status, body = http(view.url + "node/0/cut", "POST")
        assert status == 409 and "takes no faults" in body["error"], body
        assert not node.view().cut_off
    finally:
        view.close()
        view.close()
        node.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(view.url + "frame", timeout=5)


def test_another_service_decides_what_the_submit_box_does(tmp_path):
    addresses = local_addresses(1)
    node = Node(0, addresses, str(tmp_path))

    def put_or_get(text: str) -> dict:
        verb, _, rest = text.partition(" ")
        if verb not in ("put", "get"):
            raise BadRequest(400, f"want put KEY VALUE or get KEY, not {verb!r}")
        if verb == "get":
            raise ControlRefused("no leader")
        return {"message": f"did {text}"}
    view = WebView(addresses, AllAlive(1), submit=put_or_get, submit_hint="put K V | get K")
    try:
        assert http(view.url + "submit", "POST", {"command": "put a 1"}) == \
            (200, {"message": "did put a 1"})
        assert http(view.url + "submit", "POST", {"command": "drop a"})[0] == 400
        assert http(view.url + "submit", "POST", {"command": "get a"}) == \
            (409, {"error": "no leader"})
        assert wait_for_frame(view.url, lambda f: True, "a frame")["submit_hint"] == \
            "put K V | get K"
    finally:
        view.close()
        node.close()


def test_node_processes_take_only_the_actions_that_fit_their_state():
    processes = NodeProcesses(2, lambda node_id: [sys.executable, "-c",
                                                  "import time; time.sleep(120)"])
    try:
        pids = [processes.start(0), processes.start(1)]
        assert processes.states() == [{"process": "alive", "pid": pid} for pid in pids]
        with pytest.raises(ControlRefused, match="node 0 is alive: cannot resume it"):
            processes.control(0, "resume")
        with pytest.raises(ControlRefused, match="cannot restart"):
            processes.control(0, "restart")
        assert "paused" in processes.control(0, "pause")
        assert processes.states()[0]["process"] == "paused"
        assert "killed" in processes.control(1, "kill")
        assert processes.states()[1] == {"process": "killed", "pid": pids[1]}
        assert not pid_alive(pids[1]) or _zombie(pids[1])
        with pytest.raises(ControlRefused, match="node 1 is killed: cannot pause it"):
            processes.control(1, "pause")
        assert "restarted" in processes.control(1, "restart")
        assert processes.states()[1]["process"] == "alive"
        assert processes.states()[1]["pid"] != pids[1]
    finally:
        processes.stop_all()   # the paused one too
    assert [state["process"] for state in processes.states()] == ["killed", "killed"]


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_cluster_web_kills_pauses_and_restarts_node_processes(tmp_path):
    pids: set[int] = set()
    proc = subprocess.Popen([sys.executable, "-m", "raft", "cluster", "--nodes", "3", "--web",
                             "0", "--data-dir", str(tmp_path)], cwd=ROOT, bufsize=0,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        url = read_until(proc, "web view at ")[-1].removeprefix("web view at ")
        assert url.startswith("http://127.0.0.1:")
        frame = wait_for_frame(url, lambda f: leader_of(f) is not None, "one leader")
        pids = {node["pid"] for node in frame["nodes"]}
        leader = leader_of(frame)
        pid = frame["nodes"][leader]["pid"]
        status, body = http(url + f"node/{leader}/kill", "POST")
        assert status == 200 and "killed" in body["message"] and not pid_alive(pid)
        status, body = http(url + f"node/{leader}/pause", "POST")
        assert status == 409 and "killed" in body["error"]
        frame = wait_for_frame(url, lambda f: f["nodes"][leader]["process"] == "killed" and
                               f["leader"] not in (None, leader), "a new leader")
        status, body = http(url + "submit", "POST", {"command": "while it was down"})
        assert status == 200, body
        index = body["index"]
        status, body = http(url + f"node/{leader}/restart", "POST")
        assert status == 200 and "restarted" in body["message"]
        pids.add(int(body["message"].rsplit(" ", 1)[1]))
        wait_for_frame(url, lambda f: f["nodes"][leader]["answering"] and
                       f["nodes"][leader]["status"]["commit_index"] >= index,
                       "the restarted node caught up")
        other = (leader + 1) % 3
        status, body = http(url + f"node/{other}/pause", "POST")
        assert status == 200 and "paused" in body["message"]
        wait_for_frame(url, lambda f: f["nodes"][other]["process"] == "paused", "paused")
        status, body = http(url + f"node/{other}/resume", "POST")
        assert status == 200 and "resumed" in body["message"]
        wait_for_frame(url, lambda f: f["nodes"][other]["answering"], "answering again")
        status, body = http(url + f"node/{other}/pause", "POST")
        assert status == 200   # stopping the cluster resumes it so that it can exit
        proc.terminate()
        assert proc.wait(DEADLINE_SECONDS) == 0
    finally:
        stop(proc)
        for pid in pids:   # a failed test must not leave the cluster's nodes behind
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
