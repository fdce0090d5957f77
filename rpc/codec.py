"""The rpc codec: values to JSON and back, never pickle (Go's gob, in spirit).

Carried: None, bool, int, float, str, bytes, lists, dicts with str keys, and dataclasses marked
with `@register` (nested freely). Anything else (tuples, sets, unregistered classes, non-str
dict keys) raises EncodeError at the sender. Every JSON object on the wire is tagged, so no
user dict can be mistaken for a dataclass:
    bytes       {"b": "<base64>"}
    dict        {"d": {key: value, ...}}
    dataclass   {"t": "<module>.<qualname>", "f": {field: value, ...}}
Frames are a 4-byte big-endian length, then the UTF-8 JSON; MAX_FRAME_BYTES bounds them.

Threads: pure functions plus a registry written at import time (registration is idempotent
and guarded by a lock, so late registration from any thread is safe too).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import struct
import threading

from rpc.errors import EncodeError, FrameError

MAX_FRAME_BYTES = 64 << 20
_LENGTH = struct.Struct(">I")

_registry: dict[str, type] = {}
_registry_lock = threading.Lock()
# Per registered class: (its wire name, its field names), so encoding a dataclass costs one dict
# lookup instead of a name built and dataclasses.fields() called each time. Written (one atomic
# dict operation at a time) under _registry_lock; read without it.
_encodable: dict[type, tuple[str, tuple[str, ...]]] = {}


def _make_encoder():
    """`encode(wire_value) -> str`, json.dumps(separators=(",", ":"), ensure_ascii=False,
    allow_nan=True) without its per-call setup: json.dumps with options builds a JSONEncoder,
    which builds a C encoder, on every call. The C encoder is made once here, without the
    circular-reference check: to_wire's output is a fresh tree (a cyclic value fails in
    to_wire with RecursionError first). Stateless between calls, so shared by all threads."""
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    make = json.encoder.c_make_encoder
    if make is None:   # no _json accelerator: the pure-Python path
        return encoder.encode
    c_encode = make(None, encoder.default, json.encoder.encode_basestring, None,
                    encoder.key_separator, encoder.item_separator, False, False, True)
    join = "".join
    return lambda value: join(c_encode(value, 0))


_encode = _make_encoder()


def register(cls: type) -> type:
    """Class decorator: lets the dataclass `cls` travel (Go's gob.Register). Idempotent."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"rpc.register takes a dataclass, not {cls!r}")
    name = type_name(cls)
    with _registry_lock:
        known = _registry.get(name)
        if known is not None and known is not cls:
            # A re-import (e.g. a module run as __main__ and imported) brings an equal twin.
            if [f.name for f in dataclasses.fields(known)] != \
                    [f.name for f in dataclasses.fields(cls)]:
                raise TypeError(f"two different classes registered as {name}")
            _encodable.pop(known, None)   # the name now decodes to `cls`; only it encodes
        _encodable[cls] = (name, tuple(f.name for f in dataclasses.fields(cls)))
        _registry[name] = cls
    return cls


def type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# ---- values -------------------------------------------------------------------------------------

# The types JSON carries as they are. A frozenset lookup of the exact type: bool and int
# subclasses (enums) are not plain, as with `type(x) in (...)` before.
_PLAIN = frozenset((type(None), bool, int, float, str))


def to_wire(value):
    """A JSON-ready form of `value`; raises EncodeError for what is not carried."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is list:
        return [item if type(item) in _PLAIN else to_wire(item) for item in value]
    known = _encodable.get(kind)
    if known is not None:
        return {"t": known[0], "f": {name: item if type(item) in _PLAIN else to_wire(item)
                                     for name in known[1]
                                     for item in (getattr(value, name),)}}
    if kind is bytes or kind is bytearray:
        return {"b": base64.b64encode(value).decode("ascii")}
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise EncodeError(f"dict keys must be str, not {type(key).__name__}")
            out[key] = item if type(item) in _PLAIN else to_wire(item)
        return {"d": out}
    name = type_name(kind)
    if kind in (tuple, set, frozenset):
        raise EncodeError(f"{kind.__name__}s are not carried: use a list")
    if dataclasses.is_dataclass(value):
        raise EncodeError(f"dataclass {name} is not registered (decorate it with @rpc.register)")
    raise EncodeError(f"values of type {kind.__name__} are not carried")


def from_wire(data):
    """The value `to_wire` made `data` from; raises FrameError for anything malformed."""
    kind = type(data)
    if kind in _PLAIN:
        return data
    if kind is list:
        return [item if type(item) in _PLAIN else from_wire(item) for item in data]
    if kind is dict:
        size = len(data)
        if size == 2:
            name = data.get("t")
            fields = data.get("f")
            if type(name) is str and type(fields) is dict:
                cls = _registry.get(name)
                if cls is None:
                    raise FrameError(f"unknown type {name!r} (not registered here)")
                try:
                    return cls(**{key: item if type(item) in _PLAIN else from_wire(item)
                                  for key, item in fields.items()})
                except TypeError as exc:
                    raise FrameError(f"bad fields for {name}: {exc}") from None
        elif size == 1:
            if type(data.get("b")) is str:
                try:
                    return base64.b64decode(data["b"], validate=True)
                except binascii.Error as exc:
                    raise FrameError(f"bad base64: {exc}") from None
            if type(data.get("d")) is dict:
                return {key: item if type(item) in _PLAIN else from_wire(item)
                        for key, item in data["d"].items()}
        raise FrameError(f"unexpected JSON object {data!r:.80}")
    raise FrameError(f"unexpected JSON value {data!r:.80}")


def dumps(value) -> bytes:
    """`value` as UTF-8 JSON bytes (no length prefix); EncodeError for what is not carried
    (including text that is not valid Unicode and nesting too deep to encode)."""
    try:
        return _encode(to_wire(value)).encode()
    except RecursionError:
        raise EncodeError("value nested too deeply") from None
    except UnicodeEncodeError as exc:
        raise EncodeError(f"text is not valid Unicode: {exc}") from None


# json.loads(text) is json's shared decoder's decode(), which runs two regular expressions
# (whitespace before and after) around the C scanner; a payload written by dumps() has no
# whitespace, so the scanner alone reads it. Anything else (leading or trailing whitespace,
# an error) goes through json.loads itself, for its exact verdict and message.
_scan = json.decoder.JSONDecoder().scan_once


def _parse(text: str):
    try:
        value, end = _scan(text, 0)
    except (StopIteration, ValueError):
        return json.loads(text)   # raises the error json would (or reads leading whitespace)
    if end != len(text):
        return json.loads(text)   # trailing whitespace is fine, anything else an error
    return value


def loads(payload: bytes):
    """The value in UTF-8 JSON `payload`; FrameError for anything malformed."""
    try:
        return from_wire(_parse(payload.decode("utf-8")))
    except RecursionError:
        raise FrameError("JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"not UTF-8 JSON: {exc}") from None


def copy(value):
    """A deep copy through the wire form, as a network would make: no object is shared."""
    return from_wire(json.loads(json.dumps(to_wire(value))))


# ---- frames -------------------------------------------------------------------------------------

def frame(payload: bytes) -> bytes:
    """Length prefix + payload; EncodeError if the payload exceeds MAX_FRAME_BYTES."""
    if len(payload) > MAX_FRAME_BYTES:
        raise EncodeError(f"a frame of {len(payload)} bytes exceeds {MAX_FRAME_BYTES}")
    return _LENGTH.pack(len(payload)) + payload


def frame_length(header: bytes) -> int:
    """The payload length a 4-byte header announces; FrameError if over MAX_FRAME_BYTES."""
    (length,) = _LENGTH.unpack(header)
    if length > MAX_FRAME_BYTES:
        raise FrameError(f"a frame of {length} bytes exceeds {MAX_FRAME_BYTES}")
    return length
