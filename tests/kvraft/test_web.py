"""The live web view of a kvraft cluster, over HTTP without a browser: the submit box's rules
(kvraft.web), a raft.web.WebView in front of in-process replicas (their Raft peers drawn from
the Watch service, a put then a get through the submit endpoint, bad submits refused with a
message, a leader cut off and healed through the replicas' fault switch), and `python -m
kvraft cluster --web` with real replica processes, stopped by SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import rpc
from kvraft.server import Replica
from kvraft.web import SUBMIT_HINT, parse_kv_command, submit_kv_command
from raft.client import local_addresses
from raft.messages import RequestVoteArgs
from raft.web import BadRequest, ControlRefused, WebView
from tests.processes import ROOT, http, pid_alive, read_until, stop
from tests.raft.test_web import AllAlive, leader_of, wait_for_frame

DEADLINE_SECONDS = 60   # process starts and elections on a loaded machine included


# ---- the submit box's rules ----------------------------------------------------------------

@pytest.mark.parametrize("text, parsed", [
    ("put k v", ("put", "k", "v")),
    ('put "a key" "a value"', ("put", "a key", "a value")),
    ("append  k   w ", ("append", "k", "w")),
    ('put k ""', ("put", "k", "")),
    ("get k", ("get", "k", None)),
    ("get ''", ("get", "", None)),
])
def test_kv_commands_are_split_as_a_shell_would(text, parsed):
    assert parse_kv_command(text) == parsed


@pytest.mark.parametrize("text, words", [
    ("", "no operation ''"),
    ("delete k", "no operation 'delete'"),
    ("PUT k v", "no operation 'PUT'"),
    ("put k", "put wants KEY VALUE"),
    ("put a b c", "put wants KEY VALUE .* not 3"),
    ("get", "get wants KEY"),
    ("get a b", "get wants KEY"),
    ('put k "v', "cannot split"),
])
def test_bad_kv_commands_are_refused_with_a_message(text, words):
    with pytest.raises(BadRequest, match=words) as refused:
        parse_kv_command(text)
    assert refused.value.status == 400 and "\n" not in str(refused.value)


def test_an_operation_no_majority_completes_is_refused_in_time(tmp_path):
    addresses = local_addresses(3)
    lonely = Replica(0, addresses, str(tmp_path))   # its two peers never start
    try:
        with pytest.raises(ControlRefused, match="within 1 s .*may still take effect"):
            submit_kv_command(addresses, "put k v", deadline_seconds=1.0)
        with pytest.raises(ControlRefused, match="no replica completed the get"):
            submit_kv_command(addresses, "get k", deadline_seconds=1.0)
    finally:
        lonely.close()


# ---- a WebView in front of in-process replicas ----------------------------------------------

def kv_view(addresses: list[str]) -> WebView:
    return WebView(addresses, AllAlive(len(addresses)),
                   submit=lambda text: submit_kv_command(addresses, text),
                   submit_hint=SUBMIT_HINT, title="kvraft cluster, live")


@pytest.fixture
def in_process_replicas(tmp_path):
    addresses = local_addresses(3)
    replicas = []
    view = None
    try:
        for i in range(3):
            replicas.append(Replica(i, addresses, str(tmp_path), allow_faults=True))
        view = kv_view(addresses)
        yield replicas, view
    finally:
        if view is not None:
            view.close()
        for replica in replicas:
            replica.close()


def test_the_page_shows_every_replica_and_one_leader(in_process_replicas):
    _, view = in_process_replicas
    status, page = http(view.url)
    assert status == 200 and '<script src="/page.js">' in page
    frame = wait_for_frame(view.url, lambda f: leader_of(f) is not None, "one leader")
    assert len(frame["nodes"]) == 3 and frame["leader"] == leader_of(frame)
    assert frame["title"] == "kvraft cluster, live" and frame["submit_hint"] == SUBMIT_HINT
    leader = frame["nodes"][frame["leader"]]["status"]
    assert len(leader["next_index"]) == len(leader["match_index"]) == 3
    # the replicas' TcpPeers report their RPCs
    wait_for_frame(view.url, lambda f: any(
        e["from"] == f["leader"] and e["rpc"] == "AppendEntries" and e["kind"] == "reply"
        for e in f["events"]), "the leader's heartbeats answered")


def test_a_put_through_the_submit_box_is_committed_everywhere_and_read_back(
        in_process_replicas):
    _, view = in_process_replicas
    status, body = http(view.url + "submit", "POST", {"command": 'put colour "sea green"'})
    assert status == 200, body
    assert body["key"] == "colour" and body["value"] == "sea green"
    assert "'colour' set to 'sea green': committed" in body["message"]
    index = body["commit_index"]
    assert index >= 1
    wait_for_frame(view.url, lambda f: all(n["status"] and n["status"]["commit_index"] >= index
                                           for n in f["nodes"]), "the put committed everywhere")
    status, body = http(view.url + "submit", "POST", {"command": "append colour !"})
    assert status == 200 and body["commit_index"] >= index + 1, body
    status, body = http(view.url + "submit", "POST", {"command": "get colour"})
    assert (status, body["value"]) == (200, "sea green!"), body
    assert body["message"] == "get 'colour' read 'sea green!'"
    assert http(view.url + "submit", "POST", {"command": "get nothing"})[1]["value"] == ""


@pytest.mark.parametrize("payload, words", [
    ({"command": "drop colour"}, "no operation 'drop'"),
    ({"command": "put colour"}, "put wants KEY VALUE"),
    ({"command": ""}, "non-empty"),
    ({"order": "get colour"}, "non-empty"),
    ({"command": "put k " + "v" * 300}, "at most 200 characters"),
])
def test_a_bad_submit_gets_a_400_with_a_message(in_process_replicas, payload, words):
    _, view = in_process_replicas
    status, body = http(view.url + "submit", "POST", payload)
    assert status == 400 and words in body["error"] and "\n" not in body["error"], body


def test_a_cut_off_leader_loses_its_place_and_follows_once_healed(in_process_replicas):
    replicas, view = in_process_replicas
    old = leader_of(wait_for_frame(view.url, lambda f: leader_of(f) is not None, "a leader"))
    status, body = http(view.url + f"node/{old}/cut", "POST")
    assert status == 200 and "cut off" in body["message"], body
    assert replicas[old].watch.switch.cut_off
    # its Raft service refuses the peers' RPCs (a stale vote request: harmless if answered)
    stale = RequestVoteArgs(term=0, candidate_id=(old + 1) % 3, last_log_index=0,
                            last_log_term=0)
    with pytest.raises(rpc.RemoteError, match="cut off"):
        raft_call(view.addresses[old], stale)
    assert raft_call(view.addresses[(old + 1) % 3], stale).vote_granted is False
    frame = wait_for_frame(view.url, lambda f: f["leader"] not in (None, old),
                           "a new leader beside the cut-off one")
    status, body = http(view.url + "submit", "POST", {"command": "put while cut"})
    assert status == 200, body
    new_term = frame["nodes"][frame["leader"]]["status"]["term"]
    status, body = http(view.url + f"node/{old}/heal", "POST")
    assert status == 200 and "healed" in body["message"], body
    wait_for_frame(view.url, lambda f: f["nodes"][old]["status"]["role"] == "follower" and
                   f["nodes"][old]["status"]["term"] >= new_term and
                   not f["nodes"][old]["cut_off"], "the healed old leader following")
    assert http(view.url + "submit", "POST", {"command": "get while"})[1]["value"] == "cut"


def raft_call(address: str, args):
    client = rpc.dial(address, timeout=DEADLINE_SECONDS)
    try:
        return client.call("Raft.request_vote", args, timeout=DEADLINE_SECONDS)
    finally:
        client.close()


def test_a_replica_not_started_by_the_cluster_command_takes_no_faults(tmp_path):
    addresses = local_addresses(1)
    replica = Replica(0, addresses, str(tmp_path))
    view = kv_view(addresses)
    try:
        status, body = http(view.url + "node/0/cut", "POST")
        assert status == 409 and "takes no faults" in body["error"], body
        assert not replica.watch.switch.cut_off
    finally:
        view.close()
        replica.close()


def test_the_replica_command_hides_its_fault_flag():
    result = subprocess.run([sys.executable, "-m", "kvraft", "server", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=DEADLINE_SECONDS,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0 and "--data-dir" in result.stdout
    assert "--allow-faults" not in result.stdout


# ---- the cluster command's processes ------------------------------------------------------

def start_cluster(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kvraft", "cluster", *args], cwd=ROOT,
                            bufsize=0, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONPATH=ROOT))


def test_cluster_web_puts_gets_and_kills_replica_processes_then_removes_its_state():
    proc = start_cluster("--nodes", "3", "--web", "0")
    pids: list[int] = []
    try:
        lines = read_until(proc, "web view at ")
        data_dir = next(line for line in lines if line.startswith("state in ")).split()[2]
        assert os.path.isdir(data_dir) and "temporary" in lines[1]
        pids = [int(line.rsplit(" pid ", 1)[1]) for line in lines if line.startswith("replica")]
        assert len(pids) == 3
        url = lines[-1].removeprefix("web view at ")
        assert url.startswith("http://127.0.0.1:")
        frame = wait_for_frame(url, lambda f: leader_of(f) is not None, "one leader",
                               DEADLINE_SECONDS)
        assert [node["pid"] for node in frame["nodes"]] == pids
        status, body = http(url + "submit", "POST", {"command": "put k before"})
        assert status == 200, body
        leader = leader_of(frame)
        status, body = http(url + f"node/{leader}/kill", "POST")
        assert status == 200 and not pid_alive(pids[leader])
        assert body["message"].startswith(f"replica {leader} killed"), body
        assert frame["noun"] == "replica"
        frame = wait_for_frame(url, lambda f: f["leader"] not in (None, leader), "a new leader")
        follower = next(i for i in range(3) if i not in (leader, frame["leader"]))
        status, body = http(url + f"node/{follower}/cut", "POST")   # --allow-faults given
        assert status == 200 and body["message"] == f"replica {follower} cut off from the " \
            "others", body
        wait_for_frame(url, lambda f: f["nodes"][follower]["cut_off"], "the follower cut off")
        status, body = http(url + f"node/{follower}/heal", "POST")
        assert status == 200 and "healed" in body["message"], body

        def following(f: dict) -> bool:   # its election attempts while cut off are over
            healed = f["nodes"][follower]
            return (f["leader"] is not None and not healed["cut_off"]
                    and healed["status"]["role"] == "follower"
                    and healed["status"]["term"] == f["nodes"][f["leader"]]["status"]["term"])
        wait_for_frame(url, following, "the healed follower following a leader")
        status, body = http(url + "submit", "POST", {"command": "append k +after"})
        assert status == 200, body
        status, body = http(url + "submit", "POST", {"command": "get k"})
        assert (status, body.get("value")) == (200, "before+after"), body
        status, body = http(url + "submit", "POST", {"command": "get"})
        assert status == 400 and "get wants KEY" in body["error"]
        proc.terminate()
        assert proc.wait(DEADLINE_SECONDS) == 0
        rest = proc.stdout.read().decode()
        assert f"removed the state in {data_dir}" in rest
        assert not os.path.exists(data_dir)
        assert not any(pid_alive(pid) for pid in pids)
    finally:
        stop(proc)
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, 9)


def test_cluster_keeps_a_given_data_directory(tmp_path):
    proc = start_cluster("--nodes", "2", "--data-dir", str(tmp_path))
    expected = ["kvraft-0.raft", "kvraft-1.raft"]
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while sorted(os.listdir(tmp_path)) != expected:   # both replicas have started
            assert time.monotonic() < deadline, os.listdir(tmp_path)
            time.sleep(0.05)   # waiting for other processes' files: nothing to wait on
        proc.terminate()
        assert proc.wait(DEADLINE_SECONDS) == 0
        out = proc.stdout.read().decode()
    finally:
        stop(proc)
    assert f"state in {tmp_path} (kept at exit)" in out
    assert f"the state stays in {tmp_path}" in out
    assert sorted(os.listdir(tmp_path)) == expected
