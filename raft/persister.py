"""Where a Raft peer keeps what it must not forget: current term, vote, log and snapshot.

Raft calls, under its lock (they only record the change and never wait on the disk):
    save_state(term, voted_for)           the term or the vote changed
    save_log(first_index, entries)        log[first_index:] is replaced by `entries`
                                          (truncate-and-append; [] only truncates); indices
                                          are global: first_index > the snapshot's index
    save_snapshot(index, term, snapshot)  the service's state through `index` is `snapshot`
                                          (bytes): the log through `index` goes; the entries
                                          after it stay if the entry at `index` has `term`,
                                          otherwise the whole log goes (Figure 13, step 6-7).
                                          One record: the snapshot and the trimmed log are
                                          durable together or not at all.
and, outside its lock, `sync()`: everything saved before the call is durable when it returns
(one fsync for all that was saved meanwhile: a group commit). On start `load() -> (term,
voted_for, entries)` (the entries after the snapshot) and `load_snapshot() -> (index, term,
snapshot)` ((0, 0, b"") when there is none). `raft_state_size()` is the size of what Raft keeps
without the snapshot, counted as the file persister writes it compacted (MIT's
RaftStateSize for our encoding).

MemoryPersister: in memory; survives a Raft restart inside one process (MIT's Persister).
FilePersister: an append-only file of records, each `length(4) payload-crc32(4)
header-crc32(4) JSON` (the header's own checksum covers the first 8 bytes, so a damaged length
is never mistaken for a short write), fsync'd on sync(). On open, a torn tail (a crash
mid-write, never acknowledged since sync() had not returned: a partial last record, a last
payload that fails its checksum, or a zero-filled tail) is reported on the log and cut off;
anything else that fails a check (a damaged header anywhere, a bad payload followed by more
data, a record that is not a state record, a snapshot that does not fit) raises
CorruptStateError naming the file and the byte offset: never silently used. When the file
grows past twice the size of the state it holds (the snapshot included), sync() rewrites it
whole: to a temporary file, fsync'd, renamed over the old one, directory fsync'd (atomic on
POSIX). A snapshot therefore bounds the file: the next compaction drops the log it replaced.

Threads: none. Thread-safe: the saves and load() take a short mutex around the in-memory model
and the list of records not yet written; sync() takes a second one around the file (writing,
fsync, compaction), so Raft saves under its own lock while another thread syncs outside it.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import zlib

from rpc import codec

log = logging.getLogger("raft")

_HEADER = struct.Struct(">III")   # payload length, payload crc32, crc32 of those 8 bytes
COMPACT_MIN_BYTES = 1 << 20


def _record(payload: bytes) -> bytes:
    head = struct.pack(">II", len(payload), zlib.crc32(payload))
    return head + struct.pack(">I", zlib.crc32(head)) + payload


def _payload(wire_record: dict) -> bytes:
    return json.dumps(wire_record, separators=(",", ":"), ensure_ascii=False).encode()


def _state_image(term: int, voted_for, first_index: int, wire_entries: list) -> list[bytes]:
    """The records of a compacted file without its snapshot: the state and the whole log."""
    return [_record(_payload(codec.to_wire({"s": [term, voted_for]}))),
            _record(_payload({"d": {"l": [first_index, wire_entries]}}))]


def _kept_after_snapshot(index: int, term: int, snapshot_index: int, terms: list[int]) -> int:
    """How many entries of a log starting after `snapshot_index` (with `terms`) survive a
    snapshot through (index, term): those after `index` if the log holds (index, term)."""
    position = index - snapshot_index - 1
    if 0 <= position < len(terms) and terms[position] == term:
        return len(terms) - position - 1
    return 0


def _check_snapshot(index, term, snapshot, snapshot_index: int) -> None:
    if type(index) is not int or type(term) is not int or type(snapshot) is not bytes:
        raise ValueError(f"bad snapshot fields ({index!r}, {term!r}, "
                         f"{type(snapshot).__name__})")
    if index <= snapshot_index or term < 0:
        raise ValueError(f"snapshot through {index} (term {term}) does not follow the one "
                         f"through {snapshot_index}")


class CorruptStateError(Exception):
    """The persisted state cannot be trusted; the message says where and why."""


class MemoryPersister:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._term = 0
        self._voted_for = None
        self._log: list = []
        self._snapshot = (0, 0, b"")

    def save_state(self, term: int, voted_for) -> None:
        with self._mutex:
            self._term, self._voted_for = term, voted_for

    def save_log(self, first_index: int, entries: list) -> None:
        copied = codec.copy(entries)
        with self._mutex:
            start = self._snapshot[0]
            if first_index <= start:
                raise ValueError(f"log write at {first_index}, inside the snapshot through "
                                 f"{start}")
            del self._log[first_index - start - 1:]
            self._log.extend(copied)

    def save_snapshot(self, index: int, term: int, snapshot: bytes) -> None:
        with self._mutex:
            start = self._snapshot[0]
            _check_snapshot(index, term, snapshot, start)
            kept = _kept_after_snapshot(index, term, start, [e.term for e in self._log])
            self._log = self._log[len(self._log) - kept:] if kept else []
            self._snapshot = (index, term, bytes(snapshot))

    def sync(self) -> None:
        pass

    def load(self) -> tuple[int, object, list]:
        with self._mutex:
            return self._term, self._voted_for, codec.copy(self._log)

    def load_snapshot(self) -> tuple[int, int, bytes]:
        with self._mutex:
            return self._snapshot

    def raft_state_size(self) -> int:
        with self._mutex:
            wire = [codec.to_wire(entry) for entry in self._log]
            return sum(map(len, _state_image(self._term, self._voted_for,
                                             self._snapshot[0] + 1, wire)))

    def copy(self) -> "MemoryPersister":
        """An independent copy (the tester hands a restarted peer a copy, as MIT's does)."""
        twin = MemoryPersister()
        with self._mutex:
            twin._term, twin._voted_for, twin._log = self._term, self._voted_for, list(self._log)
            twin._snapshot = self._snapshot
        return twin

    def close(self) -> None:
        pass


class FilePersister:
    """The state of one peer in `path` (created if missing). Raises CorruptStateError on open
    if the file is damaged, OSError if it cannot be read or written."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._mutex = threading.Lock()   # the model below and _pending
        self._io = threading.Lock()      # the file: writes, fsync, compaction
        self._term = 0
        self._voted_for = None
        self._snapshot = (0, 0, b"")      # (index, term, bytes)
        self._log: list = []          # the entries after the snapshot, in wire form
        self._terms: list[int] = []   # their terms
        self._log_bytes: list[int] = []   # about the encoded size of each entry
        self._live_bytes = 0              # their sum: what a compacted file would hold
        self._pending: list[bytes] = []   # records saved, not yet written
        valid_length = self._replay()
        self._log_bytes = [64] * len(self._log)   # an estimate until the first compaction
        self._live_bytes = 64 * len(self._log) + len(self._snapshot[2]) * 4 // 3
        self._file = open(path, "ab")
        if self._file.tell() != valid_length:
            self._file.truncate(valid_length)
            self._file.seek(valid_length)
            self._fsync()

    # ---- the Raft side -------------------------------------------------------------------------

    def save_state(self, term: int, voted_for) -> None:
        payload = _payload(codec.to_wire({"s": [term, voted_for]}))
        with self._mutex:
            self._term, self._voted_for = term, voted_for
            self._pending.append(_record(payload))

    def save_log(self, first_index: int, entries: list) -> None:
        # Kept in wire form: encoded once, and never shared with the caller's objects.
        wire = [codec.to_wire(entry) for entry in entries]
        payload = _payload({"d": {"l": [first_index, wire]}})
        share = len(payload) // max(len(entries), 1)
        with self._mutex:
            start = self._snapshot[0]
            if first_index <= start:
                raise ValueError(f"log write at {first_index}, inside the snapshot through "
                                 f"{start}")
            position = first_index - start - 1
            del self._log[position:]
            del self._terms[position:]
            self._live_bytes -= sum(self._log_bytes[position:])
            del self._log_bytes[position:]
            self._log.extend(wire)
            self._terms.extend(entry.term for entry in entries)
            self._log_bytes.extend([share] * len(entries))
            self._live_bytes += share * len(entries)
            self._pending.append(_record(payload))

    def save_snapshot(self, index: int, term: int, snapshot: bytes) -> None:
        payload = _payload(codec.to_wire({"n": [index, term, bytes(snapshot)]}))
        with self._mutex:
            _check_snapshot(index, term, snapshot, self._snapshot[0])
            self._trim_for_snapshot(index, term)
            self._live_bytes += len(payload) - len(self._snapshot[2]) * 4 // 3
            self._snapshot = (index, term, bytes(snapshot))
            self._pending.append(_record(payload))

    def sync(self) -> None:
        with self._io:
            with self._mutex:
                records, self._pending = self._pending, []
                if not records:
                    return
                size = self._file.tell() + sum(map(len, records))
                image = None
                if size > max(COMPACT_MIN_BYTES, 2 * self._live_bytes):
                    image = self._image()   # holds every record saved so far
            if image is not None:
                self._compact(image)
                return
            self._file.write(b"".join(records))
            self._file.flush()
            self._fsync()

    def load(self) -> tuple[int, object, list]:
        with self._mutex:
            return self._term, self._voted_for, [codec.from_wire(entry) for entry in self._log]

    def load_snapshot(self) -> tuple[int, int, bytes]:
        with self._mutex:
            return self._snapshot

    def raft_state_size(self) -> int:
        with self._mutex:
            return sum(map(len, _state_image(self._term, self._voted_for,
                                             self._snapshot[0] + 1, self._log)))

    def close(self) -> None:
        if not self._file.closed:
            self.sync()
            with self._io:
                self._file.close()

    # ---- the file -------------------------------------------------------------------------------

    def _trim_for_snapshot(self, index: int, term: int) -> None:
        kept = _kept_after_snapshot(index, term, self._snapshot[0], self._terms)
        cut = len(self._log) - kept
        self._live_bytes -= sum(self._log_bytes[:cut])
        del self._log[:cut], self._terms[:cut], self._log_bytes[:cut]

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
            except (codec.FrameError, ValueError, TypeError, KeyError, IndexError,
                    AttributeError) as exc:
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
        elif "n" in record:
            index, term, snapshot = record["n"]
            _check_snapshot(index, term, snapshot, self._snapshot[0])
            self._trim_for_snapshot(index, term)
            self._snapshot = (index, term, snapshot)
        else:
            first_index, entries = record["l"]
            wire_entries = wire["d"]["l"][1]
            if type(first_index) is not int or type(entries) is not list:
                raise ValueError("bad log record")
            start = self._snapshot[0]
            if not start + 1 <= first_index <= start + len(self._log) + 1:
                raise ValueError(f"log record starts at {first_index}, log has "
                                 f"{start + len(self._log)} (snapshot through {start})")
            terms = [entry.term for entry in entries]
            if any(type(term) is not int for term in terms):
                raise ValueError("bad log entry")
            position = first_index - start - 1
            del self._log[position:], self._terms[position:]
            self._log.extend(wire_entries)
            self._terms.extend(terms)

    def _image(self) -> list[bytes]:
        """The records of the compacted file (under the mutex)."""
        index, term, snapshot = self._snapshot
        records = _state_image(self._term, self._voted_for, index + 1, list(self._log))
        if index:
            records.insert(1, _record(_payload(codec.to_wire({"n": [index, term, snapshot]}))))
        return records

    def _compact(self, image: list[bytes]) -> None:
        """Under the file lock: the file becomes `image`."""
        temporary = self._path + ".tmp"
        with open(temporary, "wb") as f:
            f.write(b"".join(image))
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
        with self._mutex:
            log_bytes = len(image[-1])
            share = max(log_bytes // max(len(self._log), 1), 1)
            self._log_bytes = [share] * len(self._log)
            self._live_bytes = size - log_bytes + share * len(self._log)
