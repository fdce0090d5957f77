"""A local cluster of node processes, as the `cluster` commands of raft and kvraft run it: the
processes supervised (started, killed, paused, resumed, restarted), their changes printed, a
live web view on request, and the state directory (temporary unless given).

    run_local_cluster(program="raft", noun="node", nodes=5, data_dir="", seconds=0,
                      node_command=lambda i, peers, data_dir: [...argv...],
                      read_states=raft.client.status,       # addresses -> [Status | str]
                      web_port=8080, web_host="127.0.0.1",  # web_port None: no view
                      make_view=lambda addresses, processes, port, host: WebView(...))

Threads: none of its own. run_local_cluster runs on the main thread (Ctrl-C and SIGTERM end
it); NodeProcesses is called by the main thread and by the web view's request threads, which
share its one mutex (allowed in raft/), held while a signal is sent or a process started or
reaped.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from csp.cli import StatusLine, stop_on_sigterm
from raft.web import ControlRefused

STOP_SECONDS = 10.0            # NodeProcesses.stop_all: SIGKILL a node still there after this
WATCH_SECONDS = 0.2            # the processes are asked for their status this often


class NodeProcesses:
    """The cluster's node processes: started, killed (SIGKILL), paused (SIGSTOP), resumed
    (SIGCONT) and restarted from their data directory on request. Thread-safe (one mutex: the
    main thread and the web page's request threads both call it); nothing here blocks for
    long (a kill waits for the process to be reaped)."""

    def __init__(self, count: int, node_command, noun: str = "node") -> None:
        """`count` nodes; `node_command(node_id)` is the argv that starts (and restarts) one,
        its fault switch enabled; `noun` names one in messages ("node", "replica")."""
        self._node_command = node_command
        self._noun = noun
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen | None] = [None] * count
        self._paused = [False] * count

    def start(self, node_id: int) -> int:
        """Start node `node_id`'s process; its PID."""
        with self._lock:
            return self._start(node_id)

    def _start(self, node_id: int) -> int:
        proc = subprocess.Popen(self._node_command(node_id), stdout=subprocess.DEVNULL)
        self._procs[node_id] = proc
        self._paused[node_id] = False
        return proc.pid

    def states(self) -> list[dict]:
        """Per node: {"process": "alive" | "paused" | "killed", "pid"} ("killed" also when it
        exited by itself)."""
        with self._lock:
            return [{"process": self._state(i), "pid": None if proc is None else proc.pid}
                    for i, proc in enumerate(self._procs)]

    def _state(self, node_id: int) -> str:
        proc = self._procs[node_id]
        if proc is None or proc.poll() is not None:
            return "killed"
        return "paused" if self._paused[node_id] else "alive"

    def control(self, node_id: int, action: str) -> str:
        """kill | restart | pause | resume node `node_id`; the message to show.
        ControlRefused when the action does not fit its state."""
        with self._lock:
            state = self._state(node_id)
            wanted = {"kill": ("alive", "paused"), "pause": ("alive",), "resume": ("paused",),
                      "restart": ("killed",)}[action]
            if state not in wanted:
                raise ControlRefused(f"{self._noun} {node_id} is {state}: cannot {action} it")
            proc = self._procs[node_id]
            if action == "kill":
                proc.kill()
                proc.wait()
                return f"{self._noun} {node_id} killed (kill -9 {proc.pid})"
            if action == "restart":
                return f"{self._noun} {node_id} restarted from its data directory, pid " \
                       f"{self._start(node_id)}"
            proc.send_signal(signal.SIGSTOP if action == "pause" else signal.SIGCONT)
            self._paused[node_id] = action == "pause"
            return (f"{self._noun} {node_id} "
                    f"{'paused (SIGSTOP)' if action == 'pause' else 'resumed'}")

    def stop_all(self) -> None:
        """SIGTERM every running process (resuming a paused one first) and wait for each; one
        still there after STOP_SECONDS gets SIGKILL."""
        with self._lock:
            running = [proc for proc in self._procs if proc is not None]
            for i, proc in enumerate(self._procs):
                if proc is not None and proc.poll() is None:
                    if self._paused[i]:
                        proc.send_signal(signal.SIGCONT)
                        self._paused[i] = False
                    proc.terminate()
            for proc in running:
                try:
                    proc.wait(STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def run_local_cluster(program: str, noun: str, nodes: int, data_dir: str, seconds: float,
                      node_command,
                      read_states, web_port: int | None = None, web_host: str = "127.0.0.1",
                      make_view=None) -> None:
    """The whole `cluster` command of `program` (raft, kvraft: names the temporary state
    directory). Picks `nodes` free local addresses; prints the --peers value and where the
    state is (`data_dir`, or a new temporary directory, removed at exit); starts each process
    (`node_command(i, peers, data_dir)` is its argv), printing "<noun> I  ADDRESS  pid P";
    with a `web_port`, `make_view(addresses, processes, web_port, web_host)` returns a view
    with a `url` (printed) and `close()` (an OSError there, such as a port taken, ends the
    command with one error line and exit status 1); then prints each process's role and term
    as they change (`read_states(addresses)` -> per process a Status with role and term, or a
    string saying why not) until `seconds` (0: for ever) or Ctrl-C/SIGTERM. Always closes the
    view, stops every process and says where the state was. Call it from the main thread."""
    from raft.client import local_addresses
    temporary = not data_dir
    data_dir = data_dir or tempfile.mkdtemp(prefix=f"{program}-cluster-")
    try:
        addresses = local_addresses(nodes)
        peers = ",".join(addresses)
        kept = ("a temporary directory, removed at exit; --data-dir keeps the state"
                if temporary else "kept at exit")
        print(f"peers {peers}\nstate in {data_dir} ({kept})", flush=True)
        processes = NodeProcesses(nodes, lambda i: node_command(i, peers, data_dir), noun)

        def start_web():
            if web_port is None:
                return None
            try:
                return make_view(addresses, processes, web_port, web_host)
            except OSError as exc:
                print(f"error: cannot serve the web view on {web_host}:{web_port}: {exc}",
                      file=sys.stderr, flush=True)
                raise SystemExit(1) from None
        _supervise(processes, addresses, noun, start_web,
                   lambda live: _watch(addresses, noun, seconds, read_states, live))
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
            print(f"removed the state in {data_dir}", flush=True)
        else:
            print(f"the state stays in {data_dir}", flush=True)


def _supervise(processes: NodeProcesses, addresses: list[str], noun: str, start_web,
               watch) -> None:
    """Start every process, then the view, then watch; Ctrl-C or SIGTERM (from here on it
    raises KeyboardInterrupt in the main thread) ends the watch early. Always closes the view
    and stops every process."""
    stop_on_sigterm()
    with StatusLine() as live:
        live.show(f"starting {len(addresses)} {noun} processes ...")
        view = None
        try:
            for i, address in enumerate(addresses):
                live.echo(f"{noun} {i}  {address}  pid {processes.start(i)}")
            view = start_web()
            if view is not None:
                live.echo(f"web view at {view.url}")
            watch(live)
        except KeyboardInterrupt:
            pass
        finally:
            live.show(f"stopping {len(addresses)} {noun} processes ...")
            if view is not None:
                view.close()
            processes.stop_all()


def _watch(addresses: list[str], noun: str, seconds: float, read_states,
           live: StatusLine) -> None:
    """Print each process's changes until `seconds` have passed (0: for ever)."""
    shown: dict[int, str] = {}
    started = time.monotonic()
    stop_at = started + seconds if seconds else float("inf")
    while time.monotonic() < stop_at:
        states = read_states(addresses)
        for i, state in enumerate(states):
            line = f"{state.role} term {state.term}" if not isinstance(state, str) else "down"
            if shown.get(i) != line:
                shown[i] = line
                live.echo(f"{time.strftime('%H:%M:%S')} {noun} {i}: {line}")
        live.show(cluster_summary(states, noun, time.monotonic() - started, seconds))
        time.sleep(WATCH_SECONDS)  # polling child processes over rpc: no channel to wait on


def cluster_summary(states: list, noun: str, elapsed: float, seconds: float) -> str:
    """The status line: the leader of the highest term (with its commit index), how many
    answer, the time. `states`: per process a Status (role, term, commit_index) or a string."""
    leaders = [(i, state) for i, state in enumerate(states)
               if not isinstance(state, str) and state.role == "leader"]
    if leaders:
        i, state = max(leaders, key=lambda pair: pair[1].term)
        who = f"leader {noun} {i}, term {state.term}, commit {state.commit_index}"
    else:
        who = "no leader"
    up = sum(not isinstance(state, str) for state in states)
    limit = f" of {seconds:.0f}" if seconds else " (Ctrl-C stops)"
    return f"{who} | {up}/{len(states)} {noun}s answer | {elapsed:.0f} s{limit}"
