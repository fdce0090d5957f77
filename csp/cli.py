"""What every command line of the project shares: plain, honest `--help`.

Typer renders help through rich by default, which turns `:key:` in a docstring into an emoji,
labels every option `<bool>` or `<int range>`, and cuts long option names off in its boxes. The
commands here print click's plain help instead, with a metavar named after each parameter
(`--port PORT`, `HOSTPORT`), so help text shows exactly what its docstring says.

`run(app, prog_name)` is what each package's `__main__` calls; `plain_command(app)` is the click
command it runs (typer's own copy of click), for tests that want to render help without a subprocess.

Threads: none; runs on the caller's thread.
"""

from __future__ import annotations

import typer


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
