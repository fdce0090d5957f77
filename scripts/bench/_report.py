"""What every benchmark prints: its figure lines, or with --json one JSON document, and on a
terminal a one-line progress display of what is being measured.

    report = Report("csp", as_json=args.json)
    rates = report.rounds("buffered stream", rounds, lambda: chan_stream(n))
    report.figure("buffered_stream", "buffered stream  ... ok", ok=ratio >= 0.7,
                  msgs_per_s=mine, baseline_msgs_per_s=base, ratio=ratio, target=0.7)
    return report.finish()

Progress is shown only when standard output is a terminal, through the project's one status
line (`csp.cli.StatusLine`): erased at the end, so what stays on the screen is exactly what a
pipe gets. Piped, there is no progress: only the figure lines, or only the JSON document.

Threads: the caller's only; not thread-safe (benchmarks report from their main thread).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable, TextIO

from csp.cli import StatusLine


class Report:
    """Collects figures; prints each one's line as it is measured (unless as_json), and at
    finish() the JSON document (if as_json). The exit status is 1 when a figure missed."""

    def __init__(self, bench: str, as_json: bool = False, stream: TextIO | None = None) -> None:
        self.bench = bench
        self.as_json = as_json
        self.stream = stream or sys.stdout
        self.status = StatusLine(self.stream).__enter__()
        self.figures: dict[str, dict[str, Any]] = {}
        self.ok = True
        self._started = time.monotonic()

    def progress(self, text: str) -> None:
        """Show `text` as the progress line (on a terminal only)."""
        elapsed = time.monotonic() - self._started
        self.status.show(f"[{self.bench} {elapsed:.0f} s] {text}")

    def line(self, text: str) -> None:
        """A line of the human-readable output (dropped with --json)."""
        if not self.as_json:
            self.status.echo(text)

    def figure(self, key: str, text: str | None = None, ok: bool | None = None,
               **values: Any) -> None:
        """Record figure `key` (its values go into the JSON document) and print its line.
        `ok` is whether it met its target (None: the figure has no target)."""
        entry = dict(values)
        if ok is not None:
            entry["ok"] = bool(ok)
            self.ok &= bool(ok)
        self.figures[key] = entry
        if text is not None:
            self.line(text)

    def rounds(self, label: str, count: int, measure: Callable[[], Any]) -> list:
        """Call `measure` `count` times showing "label: round k/count"; the results."""
        results = []
        for k in range(count):
            self.progress(f"{label}: round {k + 1}/{count}")
            results.append(measure())
        return results

    def finish(self) -> int:
        """Erase the progress line, print the JSON document if asked; the exit status."""
        self.status.close()
        if self.as_json:
            document = {"bench": self.bench, "ok": self.ok, "figures": self.figures}
            print(json.dumps(document, indent=2), file=self.stream, flush=True)
        return 0 if self.ok else 1
