"""What every command line of the project shares: plain `--help`, Ctrl-C and SIGTERM, the
`--verbose` log format, and a live status line.

Typer renders help through rich by default, which turns `:key:` in a docstring into an emoji,
labels every option `<bool>` or `<int range>`, and cuts long option names off in its boxes. The
commands here print click's plain help instead, with a metavar named after each parameter
(`--port PORT`, `HOSTPORT`), so help text shows exactly what its docstring says.

`run(app, prog_name)` is what each package's `__main__` calls; `plain_command(app)` is the click
command it runs (typer's own copy of click), for tests that want to render help without a
subprocess.

`stop_on_sigterm()` makes `kill PID` stop a process as cleanly as Ctrl-C (both raise
KeyboardInterrupt in the main thread); `serve_until_interrupted()` is the body of every server
command; `log_events(verbose)` turns on one log line per event on standard error; `StatusLine`
keeps one line of progress under the printed lines on a terminal (rich's live display) and
prints nothing but the plain lines when piped.

Threads: none; runs on the caller's thread.
"""

from __future__ import annotations

import logging
import signal
import sys
import time

import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text



def plain_command(app: typer.Typer):
    """The click command of `app`, with plain help and a metavar named after every parameter
    that takes a value. Builds a new command on each call; `app` is not changed."""
    command = typer.main.get_command(app)
    _name_metavars(command)
    return command


def run(app: typer.Typer, prog_name: str) -> None:
    """Run `app` on `sys.argv` as `prog_name` (for instance "python -m kv"); exits the process
    as click does (status 2 on a usage error)."""
    plain_command(app)(prog_name=prog_name)


def _name_metavars(command) -> None:
    # Duck-typed: typer carries its own copy of click, whose classes are not public.
    # typer chooses between its rich formatter and click's from this attribute at help time.
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    for param in command.params:
        takes_value = not (getattr(param, "is_flag", False) or getattr(param, "count", False))
        if takes_value and param.name:
            param.metavar = param.name.upper()
        if hasattr(param, "_usage_display_name"):  # a typer Argument
            _plain_argument(param)
    for sub in getattr(command, "commands", {}).values():
        _name_metavars(sub)


def _plain_argument(argument) -> None:
    # typer writes a required argument as `{name} <str>`; say `NAME`, and `[NAME]` when optional.
    usage_name = argument.metavar if argument.required else f"[{argument.metavar}]"
    if argument.nargs != 1:
        usage_name += "..."
    argument._usage_display_name = lambda: usage_name
    argument.display_type_rich = lambda ctx: None


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """From now on SIGTERM raises KeyboardInterrupt in the main thread, as Ctrl-C does. Call it
    from the main thread."""
    signal.signal(signal.SIGTERM, _interrupt)


SIGNAL_CHECK_SECONDS = 0.5


def serve_until_interrupted() -> None:
    """Block the main thread until Ctrl-C or SIGTERM, then return (the caller closes what it
    serves). Wakes every SIGNAL_CHECK_SECONDS and does nothing else while waiting."""
    stop_on_sigterm()
    try:
        while True:
            # Not a wait on a lock: the kernel may hand a process-directed signal to any of our
            # threads, and Python runs the handler only when the main thread next runs
            # bytecode, which a thread asleep on a lock never does. A timed sleep returns.
            time.sleep(SIGNAL_CHECK_SECONDS)
    except KeyboardInterrupt:
        pass


def log_events(verbose: bool, level: int = logging.DEBUG) -> None:
    """With `verbose`, log one line per event on standard error: time, thread, message.
    Logging stays off otherwise."""
    if verbose:
        logging.basicConfig(level=level, stream=sys.stderr,
                            format="%(asctime)s %(threadName)s %(message)s")


class StatusLine:
    """One line of progress kept under the printed lines while a long command runs.

        with StatusLine() as status:
            status.show("round 2/5")      # replaces the line (terminal only)
            status.echo("node 1: leader") # a permanent line above it

    On a terminal it is rich's live display (erased when the block ends, so what stays on the
    screen is what a pipe would get); piped, `show` prints nothing and `echo` prints plain
    lines. Not thread-safe: report from one thread."""

    def __init__(self, stream=None) -> None:
        self._console = Console(file=stream or sys.stdout, highlight=False, markup=False,
                                emoji=False, soft_wrap=True)
        self._live = Live(Text(""), console=self._console, transient=True, auto_refresh=False)
        self.is_live = self._console.is_terminal

    def __enter__(self) -> "StatusLine":
        if self.is_live:
            self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def show(self, text: str) -> None:
        if self.is_live:
            self._live.update(Text(text, no_wrap=True, overflow="ellipsis"), refresh=True)

    def echo(self, text: str) -> None:
        self._console.print(text)

    def close(self) -> None:
        """Erase the status line; idempotent."""
        if self.is_live:
            self._live.stop()
