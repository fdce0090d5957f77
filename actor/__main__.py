"""Command line of the actor system: `python -m actor example counter`."""

from __future__ import annotations

import typer

from csp.cli import run

app = typer.Typer(add_completion=False, help="P3: the actor system and its examples.")
example = typer.Typer(add_completion=False, help="Run one of the handout's examples.")
app.add_typer(example, name="example")


@example.command()
def counter() -> None:
    """The handout's counter: MAdd 1, MAdd 2, then MGet answers MResult; prints 3."""
    from actor.examples import run_counter
    typer.echo(run_counter())


if __name__ == "__main__":
    run(app, prog_name="python -m actor")
