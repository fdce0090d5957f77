"""The P0 text protocol, as pure functions: splitting a byte stream into lines, parsing
requests, formatting replies. No sockets, threads or clocks.

Requests, one per line ending in `\\n` (bytes are kept exactly; no `\\r` stripping):

    Put:<key>:<value>            append <value> to <key>'s list; no reply
    Get:<key>                    reply one line `<key>:<value>` per value, in list order
    Delete:<key>                 remove <key>; no reply
    Update:<key>:<old>:<new>     replace the first <old> with <new> (appended); no reply

Colons: a key never contains `:`. The last field of a request takes the rest of the line, so a
Put value and an Update's new value may contain `:`; an Update's old value cannot (its first
`:` ends it). Values may be empty and are arbitrary bytes other than `\\n`; keys are non-empty
UTF-8. Anything else (unknown command, missing field, extra field on Get/Delete, a line longer
than `MAX_LINE_BYTES`) is answered with one line `Error:<reason>` and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LINE_BYTES = 8 * 1024 * 1024

PUT, GET, DELETE, UPDATE = "Put", "Get", "Delete", "Update"


class Request(tuple):
    """A parsed request: `(op, key, value, new)`; `value` is Put's value or Update's old one,
    `new` is Update's new value. A plain tuple underneath: the server parses one per line."""

    __slots__ = ()

    def __new__(cls, op: str, key: str, value: bytes = b"", new: bytes = b""):
        return tuple.__new__(cls, (op, key, value, new))

    op = property(lambda self: self[0])
    key = property(lambda self: self[1])
    value = property(lambda self: self[2])
    new = property(lambda self: self[3])

    def __repr__(self) -> str:
        return f"Request{tuple(self)!r}"


@dataclass(frozen=True, slots=True)
class BadRequest:
    """A line that is not a request; `reason` is sent back as `Error:<reason>`."""
    reason: str

    def reply(self) -> bytes:
        return b"Error:" + self.reason.encode() + b"\n"


_new_request = tuple.__new__


def parse_request(line: bytes) -> Request | BadRequest:
    """Parse one line (without its `\\n`)."""
    fields = line.split(b":", 2)
    op = fields[0]
    if op == b"Get" or op == b"Delete":
        if len(fields) != 2:
            name = op.decode()
            return BadRequest(f"{name} needs {name}:<key> (a key has no ':')")
        return _with_key(GET if op == b"Get" else DELETE, fields[1], b"", b"")
    if op == b"Put":
        if len(fields) != 3:
            return BadRequest("Put needs Put:<key>:<value>")
        return _with_key(PUT, fields[1], fields[2], b"")
    if op == b"Update":
        rest = fields[2].split(b":", 1) if len(fields) == 3 else ()
        if len(rest) != 2:
            return BadRequest("Update needs Update:<key>:<old>:<new>")
        return _with_key(UPDATE, fields[1], rest[0], rest[1])
    if len(fields) == 1:
        return BadRequest("expected <Command>:<key>..., one of Put, Get, Delete, Update")
    shown = op[:40].decode("utf-8", "replace")
    return BadRequest(f"unknown command {shown!r}: use Put, Get, Delete or Update")


def _with_key(op: str, key: bytes, value: bytes, new: bytes) -> Request | BadRequest:
    if not key:
        return BadRequest(f"{op} needs a non-empty key")
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return BadRequest(f"{op}: the key is not valid UTF-8")
    return _new_request(Request, (op, text, value, new))


class LineSplitter:
    """Turns a byte stream into lines, however the stream was cut into chunks.

    `feed(chunk)` returns the complete lines it finished, without `\\n`; a line that grows
    past `max_line_bytes` is returned once as a `BadRequest` and the rest of it is skipped.
    `too_long_lines` counts the BadRequests returned so far (so a caller can tell, by
    comparing it before and after a feed, that a batch holds only lines).
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._max = max_line_bytes
        self._too_long = BadRequest(f"line longer than {max_line_bytes} bytes")
        self._pending: list[bytes] = []   # pieces of the unfinished line
        self._pending_size = 0
        self._skipping = False            # inside a too-long line, until its newline
        self.too_long_lines = 0

    def feed(self, chunk: bytes) -> list:
        if b"\n" not in chunk:
            self._hold(chunk)
            return [self._report()] if self._overflowed() else []
        lines = chunk.split(b"\n")
        rest = lines.pop()
        if self._skipping:
            del lines[0]  # the tail of a line already reported as too long
            self._skipping = False
        elif self._pending:
            self._pending.append(lines[0])
            lines[0] = b"".join(self._pending)
            self._pending = []
            self._pending_size = 0
        if len(chunk) > self._max or (lines and len(lines[0]) > self._max):
            lines = [self._report() if len(p) > self._max else p for p in lines]
        self._hold(rest)
        if self._overflowed():
            lines.append(self._report())
        return lines

    def _report(self) -> BadRequest:
        self.too_long_lines += 1
        return self._too_long

    def _hold(self, piece: bytes) -> None:
        if piece and not self._skipping:
            self._pending.append(piece)
            self._pending_size += len(piece)

    def _overflowed(self) -> bool:
        if self._pending_size > self._max:
            self._pending = []
            self._pending_size = 0
            self._skipping = True
            return True
        return False
