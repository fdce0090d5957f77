"""Every command's `--help` says what its docstring says: no rich markup (`:key:` is not an
emoji), no `<bool>`/`<int range>` type labels, no option names cut off in a box."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from csp.cli import plain_command

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["csp", "kv", "lsp", "miner", "raft", "kvraft", "actor", "cmud"]
NOISE = ["<bool>", "<int", "<float", "<str>", "<list", "{", "\u2026", "\u256d", "\U0001f511"]


def _commands(command, path=()):
    yield list(path), command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def _help(command, path: list[str], prog_name: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        command.main(args=[*path, "--help"], prog_name=prog_name, standalone_mode=False)
    return out.getvalue()


@pytest.mark.parametrize("package", PACKAGES)
def test_every_help_text_is_plain(package):
    app = importlib.import_module(f"{package}.__main__").app
    command = plain_command(app)
    seen = 0
    for path, _ in _commands(command):
        text = _help(command, path, f"python -m {package}")
        assert text.startswith(f"Usage: python -m {' '.join([package, *path])}"), text
        for noise in NOISE:
            assert noise not in text, f"{package} {' '.join(path)} --help shows {noise!r}:\n{text}"
        seen += 1
    assert seen >= 2, f"{package} has no subcommands?"


@pytest.mark.parametrize("package", PACKAGES)
def test_module_entry_point_prints_plain_help(package):
    result = subprocess.run([sys.executable, "-m", package, "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: python -m {package} "), result.stdout
    assert "\u256d" not in result.stdout, result.stdout


def test_docstring_colons_stay_colons():
    app = importlib.import_module("kv.__main__").app
    text = _help(plain_command(app), ["client"], "python -m kv")
    assert "Put:key:value" in text and "Update:key:old:new" in text, text


def test_long_option_names_are_not_cut():
    app = importlib.import_module("lsp.__main__").app
    text = _help(plain_command(app), ["server"], "python -m lsp")
    assert "--maxunacked, --maxUnackMessages MAXUNACKED" in text, text
