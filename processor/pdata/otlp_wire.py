"""Where each span lies in a serialized ExportTraceServiceRequest, read from the protobuf wire format, and fields
appended to spans without parsing the request.

The extractor uses it to look only at spans whose bytes contain an LLM marker, instead of walking the attributes
of every span; `llm_checks` appends its events to the checked spans. Only length-delimited framing is read:
ExportTraceServiceRequest.resource_spans (1) → ResourceSpans.scope_spans (2) → ScopeSpans.spans (2), in the order a
parser yields them. A repeated field may be appended after a message's other fields (a parser merges them), so
adding events to a span is its bytes plus the events' bytes, with every enclosing length prefix rewritten.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def span_ranges(payload: bytes) -> list[tuple[int, int]]:
    """(start, end) byte offsets of every span, in request order. Raises ValueError on malformed framing."""
    ranges: list[tuple[int, int]] = []
    for _, rs_start, rs_end in _len_fields(payload, 0, len(payload), 1):
        for _, ss_start, ss_end in _len_fields(payload, rs_start, rs_end, 2):
            ranges.extend((start, end) for _, start, end in _len_fields(payload, ss_start, ss_end, 2))
    return ranges


def spans_containing(payload: bytes, markers: Iterable[bytes]) -> set[int]:
    """Indexes (in request order) of the spans whose bytes contain any of `markers`."""
    first_hits = [(marker, at) for marker in markers if (at := payload.find(marker)) >= 0]
    if not first_hits:
        return set()
    ranges = span_ranges(payload)
    starts = [start for start, _ in ranges]
    found: set[int] = set()
    for marker, at in first_hits:
        while at >= 0:
            index = bisect.bisect_right(starts, at) - 1
            if index >= 0 and at < ranges[index][1]:
                found.add(index)
                at = payload.find(marker, ranges[index][1])  # this span is marked: skip the rest of it
            else:
                at = payload.find(marker, at + 1)
    return found


def append_to_spans(payload: bytes, additions: Mapping[bytes, bytes]) -> bytes:
    """`payload` with `additions[span_id]` (serialized Span fields, e.g. its events) appended to each span whose
    span_id is a key; every other byte as it was. Raises ValueError on malformed framing."""
    if not additions:
        return payload

    def span(start: int, end: int) -> bytes | None:
        extra = additions.get(_first_len_field(payload, start, end, _SPAN_ID))
        return payload[start:end] + extra if extra else None

    def scope(start: int, end: int) -> bytes | None:
        return _rewrite(payload, start, end, 2, span)

    def resource(start: int, end: int) -> bytes | None:
        return _rewrite(payload, start, end, 2, scope)

    rewritten = _rewrite(payload, 0, len(payload), 1, resource)
    return payload if rewritten is None else rewritten


_SPAN_ID = 2  # Span.span_id


def _rewrite(buf: bytes, start: int, end: int, number: int,
             child: Callable[[int, int], bytes | None]) -> bytes | None:
    """buf[start:end] with each length-delimited field `number` replaced by `child(its start, its end)` (None:
    unchanged), its length prefix rewritten; None if nothing changed."""
    parts: list[bytes] = []
    copied = start
    key = _encode_varint(number << 3 | _LEN)
    for field_start, content_start, content_end in _len_fields(buf, start, end, number):
        if (new := child(content_start, content_end)) is not None:
            parts += [buf[copied:field_start], key, _encode_varint(len(new)), new]
            copied = content_end
    if not parts:
        return None
    parts.append(buf[copied:end])
    return b"".join(parts)


def _first_len_field(buf: bytes, pos: int, end: int, number: int) -> bytes:
    """The content of the first length-delimited field `number` of the message in buf[pos:end] (b"" if none)."""
    if (number == _SPAN_ID and pos + 28 <= end and buf[pos:pos + 2] == b"\x0a\x10"
            and buf[pos + 18:pos + 20] == b"\x12\x08"):
        return buf[pos + 20:pos + 28]  # trace_id (16 bytes) then span_id (8): how every SDK lays a span out
    fields = _len_fields(buf, pos, end, number)
    return buf[fields[0][1]:fields[0][2]] if fields else b""


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_fields(buf: bytes, pos: int, end: int, number: int) -> list[tuple[int, int, int]]:
    """(where the field's key starts, where its content starts, where it ends) of each length-delimited field
    `number` of the message in buf[pos:end]."""
    found = []
    while pos < end:
        field_start = pos
        key = buf[pos]  # field numbers below 16 fit the key in one byte: the common case, inlined
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(buf, pos)
        wire_type = key & 7
        if wire_type == _LEN:
            length = buf[pos]
            if length < 0x80:
                pos += 1
            else:
                length, pos = _varint(buf, pos)
            if key >> 3 == number:
                found.append((field_start, pos, pos + length))
            pos += length
        elif wire_type == _VARINT:
            _, pos = _varint(buf, pos)
        elif wire_type == _I64:
            pos += 8
        elif wire_type == _I32:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire_type} at byte {pos}")
    if pos != end:
        raise ValueError("field runs past the end of its message")
    return found


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
