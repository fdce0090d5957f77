"""`python -m csp pipeline`: a small tour of the runtime, printed step by step.

A generator feeds numbers into an unbuffered channel; several workers square them (fan-out);
their results come back on per-worker channels that one collector merges with `select`, next
to a ticker that reports progress. Closing the source channel shuts the pipeline down: each
worker sees it, closes its output, and the collector stops when every output is closed.
"""

from __future__ import annotations

import time

import typer

import csp
from csp.cli import run

app = typer.Typer(add_completion=False, help="csp: Go-style channels and select on threads.")


@app.callback()
def _main() -> None:
    """csp: Go-style channels and select on threads."""


@app.command()
def pipeline(
    numbers: int = typer.Option(20, min=0, help="How many numbers the generator sends."),
    workers: int = typer.Option(3, min=1, max=64, help="How many squaring workers."),
) -> None:
    """Square NUMBERS numbers with WORKERS goroutines and merge the results with select."""
    source = csp.Chan()
    outputs = [csp.Chan(4) for _ in range(workers)]

    def generate() -> None:
        for n in range(1, numbers + 1):
            source.send(n)
        source.close()

    def square(out: csp.Chan) -> None:
        for n in source:
            out.send((n, n * n))
        out.close()

    started = time.monotonic()
    threads = [csp.go(generate, name="pipeline/generator")]
    threads += [csp.go(square, out, name=f"pipeline/worker-{i}") for i, out in enumerate(outputs)]
    ticker = csp.Ticker(0.001)
    tick = csp.Recv(ticker.c)
    worker_of = {csp.Recv(out): i for i, out in enumerate(outputs)}  # each case, its worker
    results: dict[int, int] = {}
    per_worker = [0] * workers
    ticks = 0
    while any(case.chan is not None for case in worker_of):
        case, value, ok = csp.select_case(tick, *worker_of)
        if case is tick:
            ticks += 1
            continue
        worker = worker_of[case]
        if not ok:
            typer.echo(f"worker-{worker} closed its output")
            case.chan = None  # a nil channel: that case is never ready again
            continue
        n, square_of_n = value
        results[n] = square_of_n
        per_worker[worker] += 1
        typer.echo(f"worker-{worker}: {n}^2 = {square_of_n}")
    ticker.stop()
    for thread in threads:
        thread.join()
    total = sum(results.values())
    expected = sum(n * n for n in range(1, numbers + 1))
    typer.echo(f"{len(results)} results, sum {total} (expected {expected}); "
               f"per worker {per_worker}; {ticks} progress ticks; "
               f"{(time.monotonic() - started) * 1000:.1f} ms")
    if total != expected or len(results) != numbers:
        raise typer.Exit(1)


if __name__ == "__main__":
    run(app, prog_name="python -m csp")
