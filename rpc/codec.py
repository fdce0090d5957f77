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
        _registry[name] = cls
    return cls


def type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# ---- values -------------------------------------------------------------------------------------

def to_wire(value):
    """A JSON-ready form of `value`; raises EncodeError for what is not carried."""
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind is list:
        return [to_wire(item) for item in value]
    if kind is bytes or kind is bytearray:
        return {"b": base64.b64encode(value).decode("ascii")}
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise EncodeError(f"dict keys must be str, not {type(key).__name__}")
            out[key] = to_wire(item)
        return {"d": out}
    name = type_name(kind)
    if _registry.get(name) is kind:
        return {"t": name, "f": {f.name: to_wire(getattr(value, f.name))
                                 for f in dataclasses.fields(value)}}
    if kind in (tuple, set, frozenset):
        raise EncodeError(f"{kind.__name__}s are not carried: use a list")
    if dataclasses.is_dataclass(value):
        raise EncodeError(f"dataclass {name} is not registered (decorate it with @rpc.register)")
    raise EncodeError(f"values of type {kind.__name__} are not carried")


def from_wire(data):
    """The value `to_wire` made `data` from; raises FrameError for anything malformed."""
    kind = type(data)
    if data is None or kind in (bool, int, float, str):
        return data
    if kind is list:
        return [from_wire(item) for item in data]
    if kind is not dict or len(data) not in (1, 2):
        raise FrameError(f"unexpected JSON value {data!r:.80}")
    if "b" in data and len(data) == 1 and type(data["b"]) is str:
        try:
            return base64.b64decode(data["b"], validate=True)
        except binascii.Error as exc:
            raise FrameError(f"bad base64: {exc}") from None
    if "d" in data and len(data) == 1 and type(data["d"]) is dict:
        return {key: from_wire(item) for key, item in data["d"].items()}
    if type(data.get("t")) is str and type(data.get("f")) is dict:
        cls = _registry.get(data["t"])
        if cls is None:
            raise FrameError(f"unknown type {data['t']!r} (not registered here)")
        try:
            return cls(**{key: from_wire(item) for key, item in data["f"].items()})
        except TypeError as exc:
            raise FrameError(f"bad fields for {data['t']}: {exc}") from None
    raise FrameError(f"unexpected JSON object {data!r:.80}")


def dumps(value) -> bytes:
    """`value` as UTF-8 JSON bytes (no length prefix); EncodeError for what is not carried
    (including text that is not valid Unicode and nesting too deep to encode)."""
    try:
        return json.dumps(to_wire(value), separators=(",", ":"), ensure_ascii=False,
                          allow_nan=True).encode()
    except RecursionError:
        raise EncodeError("value nested too deeply") from None
    except UnicodeEncodeError as exc:
        raise EncodeError(f"text is not valid Unicode: {exc}") from None


def loads(payload: bytes):
    """The value in UTF-8 JSON `payload`; FrameError for anything malformed."""
    try:
        return from_wire(json.loads(payload.decode("utf-8")))
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
