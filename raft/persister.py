"""Where a Raft peer keeps what it must not forget: current term, vote and log.

Raft calls, under its lock, before it answers any RPC that depends on the change:
    save_state(term, voted_for)           the term or the vote changed
    save_log(first_index, entries)        log[first_index:] is replaced by `entries`
                                          (truncate-and-append; [] only truncates)
and on start `load() -> (term, voted_for, entries)` (entries from index 1).
`sync()` makes everything saved so far durable; Raft calls it once per batch (per RPC answered,
per command batch), not once per entry.

MemoryPersister: in memory; survives a Raft restart inside one process (MIT's Persister).
FilePersister: an append-only file of records, each `length(4) payload-crc32(4)
header-crc32(4) JSON` (the header's own checksum covers the first 8 bytes, so a damaged length
is never mistaken for a short write), fsync'd on sync(). On open, a torn tail (a crash
mid-write, never acknowledged since sync() had not returned: a partial last record, a last
payload that fails its checksum, or a zero-filled tail) is reported on the log and cut off;
anything else that fails a check (a damaged header anywhere, a bad payload followed by more
data, a record that is not a state record) raises CorruptStateError: never silently used. When the file grows past twice the
size of the state it holds, it is rewritten whole: to a temporary file, fsync'd, renamed over
the old one, directory fsync'd (atomic on POSIX).

Threads: none. Not thread-safe on its own: its Raft's lock serialises the calls.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib

from rpc import codec

log = logging.getLogger("raft")

_HEADER = struct.Struct(">III")   # payload length, payload crc32, crc32 of those 8 bytes
COMPACT_MIN_BYTES = 1 << 20


def _record(payload: bytes) -> bytes:
    head = struct.pack(">II", len(payload), zlib.crc32(payload))
    return head + struct.pack(">I", zlib.crc32(head)) + payload


class CorruptStateError(Exception):
    """The persisted state cannot be trusted; the message says where and why."""


class MemoryPersister:
    def __init__(self) -> None:
        self._term = 0
        self._voted_for = None
        self._log: list = []

    def save_state(self, term: int, voted_for) -> None:
        self._term, self._voted_for = term, voted_for

    def save_log(self, first_index: int, entries: list) -> None:
        del self._log[first_index - 1:]
        self._log.extend(codec.copy(entries))

    def sync(self) -> None:
        pass

    def load(self) -> tuple[int, object, list]:
        return self._term, self._voted_for, codec.copy(self._log)

    def copy(self) -> "MemoryPersister":
        """An independent copy (the tester hands a restarted peer a copy, as MIT's does)."""
        twin = MemoryPersister()
        twin._term, twin._voted_for, twin._log = self._term, self._voted_for, list(self._log)
        return twin

    def close(self) -> None:
        pass


class FilePersister:
    """The state of one peer in `path` (created if missing). Raises CorruptStateError on open
    if the file is damaged, OSError if it cannot be read or written."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._term = 0
        self._voted_for = None
        self._log: list = []          # the entries, as loaded/saved (codec values)
        self._log_bytes: list[int] = []   # about the encoded size of each entry
        self._live_bytes = 0              # their sum: what a compacted file would hold
        self._dirty = False
        valid_length = self._replay()
        self._log_bytes = [64] * len(self._log)   # an estimate until the first compaction
        self._live_bytes = 64 * len(self._log)
        self._file = open(path, "ab")
        if self._file.tell() != valid_length:
            self._file.truncate(valid_length)
            self._file.seek(valid_length)
            self._fsync()

    # ---- the Raft side -------------------------------------------------------------------------

    def save_state(self, term: int, voted_for) -> None:
        self._term, self._voted_for = term, voted_for
        self._append(codec.to_wire({"s": [term, voted_for]}))

    def save_log(self, first_index: int, entries: list) -> None:
        # Kept in wire form: encoded once, and never shared with the caller's objects.
        wire = [codec.to_wire(entry) for entry in entries]
        del self._log[first_index - 1:]
        self._live_bytes -= sum(self._log_bytes[first_index - 1:])
        del self._log_bytes[first_index - 1:]
        self._log.extend(wire)
        payload = self._append({"d": {"l": [first_index, wire]}})
        share = len(payload) // max(len(entries), 1)
        self._log_bytes.extend([share] * len(entries))
        self._live_bytes += share * len(entries)

    def sync(self) -> None:
        if not self._dirty:
            return
        self._file.flush()
        self._fsync()
        self._dirty = False
        if self._file.tell() > max(COMPACT_MIN_BYTES, 2 * self._live_bytes):
            self._compact()

    def load(self) -> tuple[int, object, list]:
        return self._term, self._voted_for, [codec.from_wire(entry) for entry in self._log]

    def close(self) -> None:
        if not self._file.closed:
            self.sync()
            self._file.close()

    # ---- the file -------------------------------------------------------------------------------

    def _append(self, wire_record: dict) -> bytes:
        """Write one record given in the codec's wire form (rpc.codec.to_wire)."""
        payload = json.dumps(wire_record, separators=(",", ":"), ensure_ascii=False).encode()
        self._file.write(_record(payload))
        self._dirty = True
        return payload

    def _fsync(self) -> None:
        os.fsync(self._file.fileno())

    def _replay(self) -> int:
        """Apply the file's records; returns the length of its valid prefix."""
        try:
            with open(self._path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return 0
        offset = 0
        while offset < len(data):
            header = data[offset:offset + _HEADER.size]
            if len(header) < _HEADER.size:
                return self._torn(offset, len(data), "a torn record header")
            length, payload_crc, header_crc = _HEADER.unpack(header)
            if zlib.crc32(header[:8]) != header_crc:
                if not data[offset:].strip(b"\0"):   # some file systems zero-fill after a crash
                    return self._torn(offset, len(data), "a zero-filled tail")
                raise CorruptStateError(f"{self._path}: the record header at byte {offset} "
                                        f"fails its checksum: the file is damaged")
            start = offset + _HEADER.size
            payload = data[start:start + length]
            if len(payload) < length:
                return self._torn(offset, len(data), "a torn record")
            if zlib.crc32(payload) != payload_crc:
                if start + length == len(data):
                    return self._torn(offset, len(data), "a last record with a bad checksum")
                raise CorruptStateError(f"{self._path}: record at byte {offset} fails its "
                                        f"checksum and more data follows: the file is damaged")
            try:
                self._apply(payload)
            except (codec.FrameError, ValueError, TypeError, KeyError, IndexError) as exc:
                raise CorruptStateError(f"{self._path}: record at byte {offset} is not a "
                                        f"state record: {exc}") from None
            offset = start + length
        return offset

    def _torn(self, offset: int, size: int, what: str) -> int:
        log.warning("%s: %s at byte %d of %d (a crash mid-write); cutting it off",
                    self._path, what, offset, size)
        return offset

    def _apply(self, payload: bytes) -> None:
        wire = json.loads(payload.decode("utf-8"))
        record = codec.from_wire(wire)   # validates every value
        if type(record) is not dict or len(record) != 1:
            raise ValueError("not a state record")
        if "s" in record:
            term, voted_for = record["s"]
            if type(term) is not int or not (voted_for is None or type(voted_for) is int):
                raise ValueError(f"bad term or vote {record['s']!r}")
            self._term, self._voted_for = term, voted_for
        else:
            first_index, _ = record["l"]
            entries = wire["d"]["l"][1]
            if type(first_index) is not int or type(entries) is not list:
                raise ValueError("bad log record")
            if not 1 <= first_index <= len(self._log) + 1:
                raise ValueError(f"log record starts at {first_index}, log has {len(self._log)}")
            del self._log[first_index - 1:]
            self._log.extend(entries)

    def _compact(self) -> None:
        temporary = self._path + ".tmp"
        with open(temporary, "wb") as f:
            for wire_record in (codec.to_wire({"s": [self._term, self._voted_for]}),
                                {"d": {"l": [1, self._log]}}):
                f.write(_record(json.dumps(wire_record, separators=(",", ":"),
                                           ensure_ascii=False).encode()))
            f.flush()
            os.fsync(f.fileno())
            size = f.tell()
        os.replace(temporary, self._path)
        directory = os.open(os.path.dirname(os.path.abspath(self._path)), os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self._file.close()
        self._file = open(self._path, "ab")
        share = max(size // max(len(self._log), 1), 1)
        self._log_bytes = [share] * len(self._log)
        self._live_bytes = share * len(self._log)
