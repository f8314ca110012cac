"""The ONNX file's bounds, counted on its protobuf wire format before any parse [PRED-ONNX.2].

A protobuf parse builds every message, string and number of the file before anything can be
counted, and what that costs is not what the file weighs: two bytes of wire make an empty
``NodeProto`` of a hundred bytes, one byte of a packed varint an eight-byte integer. A 64 MiB
file of empty nodes took a parse past 3.9 GB. So before ``onnx_check`` parses a file, this
module walks its wire format by tag and length, without materialising anything: the fields of
each message as ``onnx``'s own message descriptors declare them (so the walk sees exactly the
sub-messages, strings and numbers the parse would build, and a field the descriptors do not
know is, as for the parse, bytes kept as they are), and it counts as it goes, refusing at the
first count over its bound (``BOUNDS``) with a ``ModelFormatError`` of rule ``bounds`` that
names the bound, the count and where. Its memory is the file plus a 1 MiB chunk; its time is
linear in the file: at most ``MAX_FIELDS`` fields are read one by one, and runs of repeated
numbers (packed, or one tag per number) are counted by C loops (``re``, ``bytes.translate``).

The bounds are what the executor's sandbox can hold [PRED-ONNX.3]: a file within them parses
and loads in ONNX Runtime under the sandbox's 768 MiB address space, so the host and every
executor give the same verdict on the same bytes [PRED-ONNX.1].
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sandbox.errors import SandboxError
from sandbox.model_format import ModelFormatError

MAX_DEPTH = 32
"""Nested messages (a model is 7 deep: model, graph, value info, type, tensor type, shape,
dimension; each sub-graph adds 3)."""
MAX_NODES = 10_000
"""``NodeProto`` messages anywhere in the file (the graph, sub-graphs, functions)."""
MAX_INITIALIZERS = 10_000
"""``GraphProto.initializer`` tensors (a torch export has about two per layer)."""
MAX_MESSAGES = 200_000
"""Sub-messages of every kind (nodes, attributes, tensors, value infos, dimensions ...)."""
MAX_STRINGS = 1_000_000
"""Elements of repeated string fields (node inputs and outputs, string attributes: a
scikit-learn forest names each tree node's mode)."""
MAX_NUMBERS = 1 << 23
"""Elements of repeated number fields (dims, ``float_data``, ``int64_data``, attribute
``ints``/``floats``: a forest's tree nodes), packed or not: 64 MiB as int64."""
MAX_TEXT_BYTES = 1 << 20
"""Bytes of ``doc_string`` fields and ``metadata_props`` entries, which compute nothing."""
MAX_STRING_BYTES = 4096
"""Bytes of any other string or bytes value (names, op types, domains, attribute strings)
except ``raw_data``: ONNX Runtime copies names into its own maps several times."""
MAX_RANK = 8
"""Dimensions of one stored tensor (a 3-D convolution's weight has 5); checked on the parsed
tensor, before its dimensions are read."""
MAX_FIELDS = 2_000_000
"""Fields read one at a time (every tag not in a run of repeated numbers): the walk's time."""
BOUNDS = {"nesting depth": MAX_DEPTH, "nodes": MAX_NODES, "initializers": MAX_INITIALIZERS,
          "messages": MAX_MESSAGES, "strings": MAX_STRINGS, "numbers": MAX_NUMBERS,
          "text bytes": MAX_TEXT_BYTES, "string bytes": MAX_STRING_BYTES,
          "fields": MAX_FIELDS, "tensor rank": MAX_RANK}
"""[PRED-ONNX.2] Every bound, by the name its refusal gives."""

_VARINT_TYPES = {3, 4, 5, 8, 13, 14, 17, 18}
"""``FieldDescriptor`` types on the wire as varints (int64, uint64, int32, bool, uint32,
enum, sint32, sint64); 1, 6, 16 are 8 bytes (double, fixed64, sfixed64), 2, 7, 15 four."""
_FIXED = {1: 8, 6: 8, 16: 8, 2: 4, 7: 4, 15: 4}
_STRING, _MESSAGE, _BYTES = 9, 11, 12
_HIGH = bytes(range(0x80, 0x100))
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class WireField:
    """One field of a message as the walk treats it."""

    name: str
    where: str
    """``Message.field``: where a refusal says it counted."""
    wire: int
    """The wire type the parse reads it with: 0 varint, 1 eight bytes, 2 length-delimited,
    5 four bytes."""
    repeated: bool
    message: Any
    """The sub-message's descriptor, or None."""
    item_bytes: int = 0
    """For repeated numbers: 0 (varints) or the fixed size of one element."""


@dataclass(slots=True)
class WireCounts:
    """What the walk counted: the file's cost to a parse [PRED-ONNX.2]."""

    nodes: int = 0
    initializers: int = 0
    messages: int = 0
    strings: int = 0
    numbers: int = 0
    text_bytes: int = 0
    fields: int = 0
    depth: int = 0
    by_field: dict[str, int] = field(default_factory=dict)
    """Elements counted per ``Message.field`` (for the refusal's detail)."""


def refuse_bound(what: str, count: int, where: str) -> ModelFormatError:
    """[PRED-ONNX.2] A file over one of ``BOUNDS``: the bound's name, its value, the count
    reached and where."""
    return ModelFormatError("bounds", f"ONNX: more than {BOUNDS[what]} {what} (at {where}); "
                                      f"the bounds are predict.md [PRED-ONNX.2]",
                            {"bound": what, "count": count, "limit": BOUNDS[what],
                             "at": where})


class _Malformed(SandboxError):
    """Wire format the parse would refuse too; ``prescan`` reports it as rule ``header``."""

    def __init__(self, message: str, at: int) -> None:
        super().__init__(f"{message} at byte {at}")


def _malformed(message: str, at: int) -> _Malformed:
    return _Malformed(message, at)


@cache
def schema(descriptor: Any) -> dict[int, WireField]:
    """The fields of one message type by number, from ``onnx``'s descriptors."""
    fields = {}
    for f in descriptor.fields:
        where = f"{descriptor.name}.{f.name}"
        if f.type == _MESSAGE:
            fields[f.number] = WireField(f.name, where, 2, f.is_repeated, f.message_type)
        elif f.type in (_STRING, _BYTES):
            fields[f.number] = WireField(f.name, where, 2, f.is_repeated, None)
        elif f.type in _FIXED:
            wire = 1 if _FIXED[f.type] == 8 else 5
            fields[f.number] = WireField(f.name, where, wire, f.is_repeated, None,
                                         _FIXED[f.type])
        elif f.type in _VARINT_TYPES:
            fields[f.number] = WireField(f.name, where, 0, f.is_repeated, None)
    return fields


@cache
def _run_pattern(tag: bytes, item_bytes: int) -> re.Pattern[bytes]:
    """A run of one repeated number field written one tag per element (proto2's default)."""
    value = rb"[\x80-\xff]{0,9}+[\x00-\x7f]" if item_bytes == 0 else \
        rb"[\x00-\xff]{%d}" % item_bytes
    return re.compile(rb"(?:" + re.escape(tag) + value + rb")++")


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _malformed("a truncated or overlong varint", pos)
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _low_bytes(data: bytes, start: int, stop: int) -> int:
    """How many bytes of ``data[start:stop]`` are below 0x80 (a varint's last byte)."""
    return sum(len(data[at:min(at + _CHUNK, stop)].translate(None, _HIGH))
               for at in range(start, stop, _CHUNK))


class _Walk:
    """One walk of one file; ``counts`` holds what it found."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.counts = WireCounts()

    def add(self, what: str, attr: str, n: int, where: str) -> None:
        total = getattr(self.counts, attr) + n
        setattr(self.counts, attr, total)
        if total > BOUNDS[what]:
            raise refuse_bound(what, total, where)

    def numbers(self, n: int, where: str) -> None:
        self.counts.by_field[where] = self.counts.by_field.get(where, 0) + n
        self.add("numbers", "numbers", n, where)

    def message(self, descriptor: Any, start: int, end: int, depth: int, text: bool) -> None:
        """Walk the fields of one message in ``data[start:end]``."""
        if depth > self.counts.depth:
            self.counts.depth = depth
            if depth > MAX_DEPTH:
                raise refuse_bound("nesting depth", depth, descriptor.name)
        data, fields, counts, pos = self.data, schema(descriptor), self.counts, start
        while pos < end:
            tag_at = pos
            tag, pos = (data[pos], pos + 1) if data[pos] < 0x80 else _varint(data, pos, end)
            wire, f = tag & 7, fields.get(tag >> 3)
            where = f.where if f is not None else f"{descriptor.name}.{tag >> 3}"
            counts.fields += 1
            if counts.fields > MAX_FIELDS:
                raise refuse_bound("fields", counts.fields, where)
            if tag < 8:
                raise _malformed("field number 0", tag_at)
            if wire == 2:
                length, pos = _varint(data, pos, end)
                if length > end - pos:
                    raise _malformed(f"{where} runs past its message", pos)
                if f is not None:
                    self.length_delimited(f, where, pos, pos + length, depth, text)
                pos += length
            elif wire in (0, 1, 5):
                if f is not None and f.repeated and f.message is None and f.wire == wire:
                    pos = self.run(f, where, tag_at, pos, end)
                elif wire == 0:
                    pos = _varint(data, pos, end)[1]
                else:
                    pos += 8 if wire == 1 else 4
                if pos > end:
                    raise _malformed(f"{where} runs past its message", end)
            else:
                raise _malformed(f"wire type {wire} (ONNX has no groups)", tag_at)

    def length_delimited(self, f: WireField, where: str, start: int, stop: int, depth: int,
                         text: bool) -> None:
        """One length-delimited field: a sub-message, a string, or packed numbers."""
        size = stop - start
        if f.message is not None:
            self.add("messages", "messages", 1, where)
            if f.message.name == "NodeProto":
                self.add("nodes", "nodes", 1, where)
            if where == "GraphProto.initializer":
                self.add("initializers", "initializers", 1, where)
            if f.name == "metadata_props" and not text:
                self.add("text bytes", "text_bytes", size, where)
            self.message(f.message, start, stop, depth + 1, text or f.name == "metadata_props")
        elif f.wire == 2:
            if f.repeated:
                self.add("strings", "strings", 1, where)
            if f.name == "doc_string" and not text:
                self.add("text bytes", "text_bytes", size, where)
            elif size > MAX_STRING_BYTES and f.name != "raw_data" and not text:
                raise refuse_bound("string bytes", size, where)
        elif f.repeated:  # packed numbers
            n = _low_bytes(self.data, start, stop) if f.item_bytes == 0 else \
                size // f.item_bytes
            self.numbers(n, where)

    def run(self, f: WireField, where: str, tag_at: int, pos: int, end: int) -> int:
        """A run of a repeated number field written one tag per element, from ``tag_at``;
        the position after it. A lone element is read here; a longer run is measured by
        one match of a pattern and one count of its varints' last bytes."""
        data, tag = self.data, self.data[tag_at:pos]
        after = _varint(data, pos, end)[1] if f.wire == 0 else pos + f.item_bytes
        if after >= end or not data.startswith(tag, after):
            self.numbers(1, where)
            return after
        match = _run_pattern(tag, f.item_bytes).match(data, tag_at, end)
        stop = match.end() if match is not None else after
        n = _low_bytes(data, tag_at, stop) // 2 if f.item_bytes == 0 else \
            (stop - tag_at) // (len(tag) + f.item_bytes)
        self.numbers(n, where)
        return stop


def prescan(data: bytes) -> WireCounts:
    """[PRED-ONNX.2] Walk ``data`` as a ``ModelProto`` without parsing it: the counts, or
    ``ModelFormatError`` (``bounds`` at the first bound exceeded, ``header`` for a wire
    format the parse would refuse too)."""
    from onnx import ModelProto

    walk = _Walk(data)
    try:
        walk.message(ModelProto.DESCRIPTOR, 0, len(data), 1, False)
    except _Malformed as e:
        raise ModelFormatError("header", f"ONNX: not an ONNX model ({e})", data[:16]) from None
    return walk.counts
