"""The rpc wire format, shared by `rpc.client` and `rpc.server`: frames, envelopes, addresses.

Every message is one frame, `codec.frame(payload)`: a 4-byte big-endian length, then UTF-8
JSON, MAX_FRAME_BYTES at most. The envelope is a plain JSON object written here (not a
codec-tagged dict); only the carried value inside it goes through `codec.to_wire`/`from_wire`:
    request   {"id": <int>, "method": "Service.method", "args": <to_wire(args)>}
    reply     {"id": <int>, "reply": <to_wire(reply)>}
    error     {"id": <int>, "error": "<message>"}      (the handler raised, or no such method)
Ids are chosen by the client, unique per client; replies may come in any order.
An address is "host:port", or "[v6 host]:port".

Building a frame raises EncodeError (at the sender, before anything is sent) for a value the
codec does not carry or a frame over MAX_FRAME_BYTES; reading one raises FrameError for
anything malformed, which ends the connection it came on.

Threads: none; pure functions, except `iter_frames`, which blocks in its socket's recv().
"""

from __future__ import annotations

import json
import socket

from rpc import codec
from rpc.errors import EncodeError, FrameError

READ_CHUNK_BYTES = 256 * 1024   # one recv() asks for this much
WRITE_BATCH_BYTES = 256 * 1024  # one sendall() carries about this much of what is queued
MAX_ERROR_CHARS = 64 * 1024     # an error reply carries at most this much of the message


# ---- frames ---------------------------------------------------------------------------------

def iter_frames(sock: socket.socket):
    """Yield each frame's payload read from `sock`, in order, until end of stream or a socket
    error (then it just stops). Raises FrameError as soon as a header announces more than
    MAX_FRAME_BYTES. Blocks in recv(); wake it by shutting the socket down."""
    buf = bytearray()
    while True:
        try:
            data = sock.recv(READ_CHUNK_BYTES)
        except OSError:
            return
        if not data:
            return  # a frame cut short by the end of the stream is simply never delivered
        buf += data
        start = 0
        end = len(buf)
        while end - start >= 4:
            length = codec.frame_length(bytes(buf[start:start + 4]))
            if end - start - 4 < length:
                break
            yield bytes(buf[start + 4:start + 4 + length])
            start += 4 + length
        if start:
            del buf[:start]


# ---- envelopes ------------------------------------------------------------------------------

def request_frame(call_id: int, method: str, args) -> bytes:
    """The frame of a call; EncodeError if `args` cannot travel."""
    return encode_envelope({"id": call_id, "method": method, "args": encode_value(args)})


def reply_frame(call_id: int, reply) -> bytes:
    """The frame of a handler's result; EncodeError if `reply` cannot travel."""
    return encode_envelope({"id": call_id, "reply": encode_value(reply)})


def error_frame(call_id: int, message: str) -> bytes:
    """The frame of a failed call; always encodable (the message may quote bad input: it is
    cut to MAX_ERROR_CHARS and lone surrogates are escaped)."""
    if len(message) > MAX_ERROR_CHARS:
        message = message[:MAX_ERROR_CHARS] + "... (cut)"
    message = message.encode("utf-8", "backslashreplace").decode()
    return encode_envelope({"id": call_id, "error": message})


def decode_request(payload: bytes) -> tuple[int, str, object]:
    """`(call_id, method, args)` from a request frame's payload; FrameError if malformed."""
    envelope = decode_envelope(payload)
    method = envelope.get("method")
    if type(method) is not str or "args" not in envelope or len(envelope) != 3:
        raise FrameError(f"not an rpc request: {payload[:80]!r}")
    return envelope["id"], method, decode_value(envelope["args"])


def decode_reply(payload: bytes) -> tuple[int, object, str | None]:
    """`(call_id, reply, error)` from a reply frame's payload: `error` is the message of an
    error reply (then `reply` is None), else None. FrameError if malformed."""
    envelope = decode_envelope(payload)
    if "error" in envelope and type(envelope["error"]) is str:
        return envelope["id"], None, envelope["error"]
    if "reply" in envelope:
        return envelope["id"], decode_value(envelope["reply"]), None
    raise FrameError(f"a reply without 'reply' or 'error': {payload[:80]!r}")


def encode_envelope(envelope: dict) -> bytes:
    """One frame holding `envelope` (a dict whose carried value is already in wire form).
    Raises EncodeError if the frame would exceed MAX_FRAME_BYTES."""
    text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
    try:
        payload = text.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate in some str
        raise EncodeError(f"a str that is not valid Unicode cannot travel: {exc}") from None
    return codec.frame(payload)


def decode_envelope(payload: bytes) -> dict:
    """The JSON object in a frame's payload; FrameError if it is not one."""
    try:
        envelope = json.loads(payload.decode())  # UTF-8 only (json.loads would guess others)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise FrameError(f"not UTF-8 JSON: {type(exc).__name__}: {exc}") from None
    if type(envelope) is not dict or type(envelope.get("id")) is not int:
        raise FrameError(f"not an rpc envelope: {payload[:80]!r}")
    return envelope


def encode_value(value):
    """`codec.to_wire(value)`; EncodeError for anything it cannot carry (also too deep)."""
    try:
        return codec.to_wire(value)
    except RecursionError:
        raise EncodeError("the value is nested too deeply to carry") from None


def decode_value(data):
    """`codec.from_wire(data)`, with every failure on bad input as a FrameError: a wrong
    field, a dataclass whose constructor refuses the values, nesting too deep."""
    try:
        return codec.from_wire(data)
    except FrameError:
        raise
    except Exception as exc:  # noqa: BLE001 - bad input must never kill the reading thread
        raise FrameError(f"cannot decode the value: {type(exc).__name__}: {exc}") from None


# ---- addresses ------------------------------------------------------------------------------

def parse_address(address: str) -> tuple[str, int]:
    """`"host:port"` (or `"[v6 host]:port"`) -> `(host, port)`; ValueError if malformed."""
    if not isinstance(address, str):
        raise ValueError(f"rpc address must be a 'host:port' string, not {address!r}")
    host, sep, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    digits = port.isascii() and port.isdigit()
    if not sep or not host or not digits or not 0 < int(port) < 65536:
        raise ValueError(f"bad rpc address {address!r}: want 'host:port' with a port in 1-65535")
    return host, int(port)
