"""What docs/debugging.md and .vscode/launch.json promise, checked.

- test_pdb_stops_in_kv_server_loop: `python -m pdb -m kv server --port 0`; at the first
  `(Pdb)` prompt it makes pdb trace the threads started from then on (the line the doc gives),
  sets a breakpoint on the first line after the `select` of `KeyValueServer._loop` (found
  with inspect, so it follows the code when lines move), continues, and connects to the
  server: the loop thread stops there, `p` shows the event (a new connection: `case is connection`,
  no client yet) and the thread's name; the breakpoint is cleared, the process continues and
  answers a Put and a Get on that connection, and SIGTERM ends it with its closing line.
- test_pdb_stops_in_query_actor_on_message: `python -m pdb -m cmud server`; a conditional
  breakpoint in `QueryActor.on_message` (only Query messages) stops on the actor's thread
  when the test's client sends a Get; `p` shows the query, the actor's uid and its store size;
  after `continue` the Get is answered.
- test_launch_configurations: every configuration of .vscode/launch.json is a `module`
  launch whose arguments the module's own command line accepts (parsed by its typer app,
  without running anything), every process the issue names has one, and cmud server B's
  desc is the one server A prints.
- test_debugging_doc_names_real_code: every `package/file.py` and `Class.method` the doc
  points at exists.

Every wait has a deadline (a select on the process's output); the process is killed at the
end whatever happened.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_SECONDS = 30.0
PROMPT = "(Pdb) "
TRACE_THREADS = "!import sys, threading; threading.settrace(sys.gettrace())"


def line_after_select(function) -> tuple[str, int]:
    """(file, line) of the first code line after the loop's `case, value, _ =
    csp.select_case(*cases)` statement in `function`: where the loop has just taken an
    event."""
    lines, start = inspect.getsourcelines(function)
    for offset, text in enumerate(lines):
        if re.match(r"\s*case, value, _ = csp\.select_case\(\*cases\)", text):
            depth = 0
            for later in range(offset, len(lines)):
                depth += lines[later].count("(") - lines[later].count(")")
                if depth == 0:
                    break
            following = later + 1
            while not lines[following].strip() or lines[following].strip().startswith("#"):
                following += 1
            return inspect.getsourcefile(function), start + following
    raise AssertionError(f"no `case, value, _ = csp.select_case(*cases)` in "
                         f"{function.__qualname__}")


def first_body_line(function) -> tuple[str, int]:
    """(file, line) of the first statement of `function` after its docstring, if any."""
    lines, start = inspect.getsourcelines(function)
    statements = ast.parse(textwrap.dedent("".join(lines))).body[0].body
    if (isinstance(statements[0], ast.Expr) and isinstance(statements[0].value, ast.Constant)
            and isinstance(statements[0].value.value, str)):
        statements = statements[1:]
    return inspect.getsourcefile(function), start + statements[0].lineno - 1


class Debuggee:
    """A process run under `python -m pdb`, its stdin a pipe we type into and its stdout and
    stderr one pipe we read with deadlines. `expect` consumes output up to a match."""

    def __init__(self, args: list[str]) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("LOGLEVEL", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "pdb", *args], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.out = ""
        self.pos = 0
        self.eof = False

    def send(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def expect(self, pattern: str, seconds: float = DEADLINE_SECONDS) -> re.Match:
        regex = re.compile(pattern)
        deadline = time.monotonic() + seconds
        fd = self.proc.stdout.fileno()
        while True:
            match = regex.search(self.out, self.pos)
            if match:
                self.pos = match.end()
                return match
            left = deadline - time.monotonic()
            if self.eof or left <= 0:
                why = "the process ended" if self.eof else f"nothing within {seconds} s"
                pytest.fail(f"waiting for {pattern!r}: {why}; output since the last match:\n"
                            f"{self.out[self.pos:][-3000:]}", pytrace=False)
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if chunk:
                    self.out += chunk.decode("utf-8", "replace")
                else:
                    self.eof = True

    def command(self, line: str) -> str:
        """Types a pdb command at the prompt just seen; returns its output up to the next
        prompt."""
        self.send(line)
        start = self.pos
        match = self.expect(re.escape(PROMPT))
        return self.out[start:match.start()]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(DEADLINE_SECONDS)
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


@pytest.fixture
def debuggee():
    started: list[Debuggee] = []

    def start(args: list[str]) -> Debuggee:
        started.append(Debuggee(args))
        return started[-1]
    try:
        yield start
    finally:
        for process in started:
            process.close()


def test_pdb_stops_in_kv_server_loop(debuggee):
    from kv.server import KeyValueServer
    path, line = line_after_select(KeyValueServer._loop)
    pdb = debuggee(["-m", "kv", "server", "--port", "0"])
    pdb.expect(r"kv/__main__\.py\(1\)<module>\(\)")
    pdb.expect(re.escape(PROMPT))
    pdb.command(TRACE_THREADS)
    assert f"Breakpoint 1 at {path}:{line}" in pdb.command(f"break {path}:{line}")
    pdb.send("continue")
    port = int(pdb.expect(r"kv server listening on 127\.0\.0\.1:(\d+)\n").group(1))

    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_SECONDS) as conn:
        pdb.expect(re.escape(f"{path}({line})_loop()"))
        pdb.expect(re.escape(PROMPT))
        # The case that ran is a new connection; the loop has not added it yet.
        answer = pdb.command("p case is connection, len(clients), dropped").strip()
        assert answer == "(True, 0, 0)", answer
        thread = pdb.command("p __import__('threading').current_thread().name").strip()
        assert thread == f"'kv-server:{port}/loop'"
        assert "Deleted breakpoint 1" in pdb.command("clear 1")
        pdb.send("continue")

        conn.sendall(b"Put:debugged:yes\nGet:debugged\n")
        conn.settimeout(DEADLINE_SECONDS)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = conn.recv(4096)
            assert chunk, f"the server closed the connection; got {reply!r}"
            reply += chunk
        assert reply == b"debugged:yes\n"

    pdb.proc.send_signal(signal.SIGTERM)     # kv server's SIGTERM handler: a clean stop
    pdb.expect(r"closed \(\d+ clients connected, \d+ disconnected\)")
    pdb.expect(r"The program exited via sys\.exit\(\)\. Exit status: 0")
    pdb.proc.stdin.close()                     # end of input at the restart prompt: pdb quits
    assert pdb.proc.wait(DEADLINE_SECONDS) == 0


def test_pdb_stops_in_query_actor_on_message(debuggee):
    from cmud.client import Client, RoundRobinRouter
    from cmud.query_actor import QueryActor
    from tests.cmud.harness import PORTS
    path, line = first_body_line(QueryActor.on_message)
    start_port = PORTS.block()
    pdb = debuggee(["-m", "cmud", "server", "--port", str(start_port), "--count", "1"])
    pdb.expect(re.escape(PROMPT))
    pdb.command(TRACE_THREADS)
    out = pdb.command(f"break {path}:{line}, type(message).__name__ == 'Query'")
    assert f"Breakpoint 1 at {path}:{line}" in out, out
    pdb.send("continue")
    pdb.expect(r"desc: .*\n")

    client = Client(RoundRobinRouter([f"127.0.0.1:{start_port + 1}"]), timeout=DEADLINE_SECONDS)
    answers: list = []
    asker = threading.Thread(target=lambda: answers.append(client.get("debug-me")),
                             name="test/asker")
    try:
        asker.start()
        pdb.expect(re.escape(f"{path}({line})on_message()"))
        pdb.expect(re.escape(PROMPT))
        assert pdb.command("p message.args").strip() == "GetArgs(key='debug-me')"
        assert pdb.command("p self.uid, len(self.store)").strip() == \
            f"('127.0.0.1:{start_port}/0', 0)"
        thread = pdb.command("p __import__('threading').current_thread().name").strip()
        assert thread == f"'actor:127.0.0.1:{start_port}/0'"
        pdb.command("clear 1")
        pdb.send("continue")
        asker.join(DEADLINE_SECONDS)
        assert not asker.is_alive(), "the Get was not answered after continue"
        assert answers == [("", False)]
    finally:
        client.close()
        asker.join(DEADLINE_SECONDS)


# ---- launch.json and the doc --------------------------------------------------------------------

NEEDED = {("kv", "server"), ("kv", "client"), ("lsp", "server"), ("lsp", "client"),
          ("miner", "server"), ("miner", "miner"), ("miner", "client"), ("raft", "node"),
          ("cmud", "server"), ("cmud", "shell"), ("cmud", "play")}


def launch_configurations() -> list[dict]:
    return json.loads((ROOT / ".vscode" / "launch.json").read_text())["configurations"]


def test_launch_configurations():
    import importlib

    import typer.main
    from typer._click import Context  # noqa: PLC0415 (typer's own click)
    seen = set()
    for config in launch_configurations():
        name = config["name"]
        assert config["type"] == "debugpy" and config["request"] == "launch", name
        assert "program" not in config and "module" in config, f"{name}: not a module launch"
        args = [arg.replace("${workspaceFolder}", str(ROOT)) for arg in config["args"]]
        app = importlib.import_module(f"{config['module']}.__main__").app
        group = typer.main.get_command(app)
        parent = Context(group, info_name=f"python -m {config['module']}")
        command_name, command, rest = group.resolve_command(parent, args)
        command.make_context(command_name, rest, parent=parent)   # raises on a bad argument
        seen.add((config["module"], command_name))
    assert NEEDED <= seen, f"no configuration for {sorted(NEEDED - seen)}"
    names = {config["name"] for config in launch_configurations()}
    for compound in json.loads((ROOT / ".vscode" / "launch.json").read_text()).get(
            "compounds", []):
        assert set(compound["configurations"]) <= names, compound["name"]


def test_cmud_server_b_desc_matches_server_a():
    """Server B's configuration names server A by the desc A prints (started with A's
    arguments here, on another port)."""
    from cmud.server import new_server
    from tests.cmud.harness import PORTS
    configs = {c["name"]: c for c in launch_configurations()}
    a_args, b_args = configs["cmud: server A"]["args"], configs["cmud: server B"]["args"]
    a_port, a_count = int(a_args[a_args.index("--port") + 1]), a_args[a_args.index("--count") + 1]
    port = PORTS.block()
    server, desc = new_server(port, int(a_count), [])
    try:
        printed = json.loads(desc)
    finally:
        server.close()
    assert json.loads(b_args[-1]) == {"sync": [f"127.0.0.1:{a_port}", printed["sync"][1]]}


def test_debugging_doc_names_real_code():
    import importlib
    doc = (ROOT / "docs" / "debugging.md").read_text()
    files = set(re.findall(r"`((?:csp|kv|lsp|miner|raft|rpc|actor|cmud)/[a-z_]+\.py)", doc))
    assert files, "the doc names no source file"
    for name in files:
        assert (ROOT / name).is_file(), f"the doc names {name}, which does not exist"
    # `pkg/file.py` followed by `Name` or `Name.attr` in the same table row or sentence.
    for path, qualname in re.findall(
            r"`((?:csp|kv|lsp|miner|raft|rpc|actor|cmud)/[a-z_]+\.py)`[^`\n]*?"
            r"`([A-Za-z_][A-Za-z_0-9]*(?:\.[A-Za-z_][A-Za-z_0-9]*)?)`", doc):
        module = importlib.import_module(path[:-3].replace("/", "."))
        target = module
        for part in qualname.split("."):
            assert hasattr(target, part), f"the doc names {path} {qualname}, which does not exist"
            target = getattr(target, part)
