"""Where each span lies in a serialized ExportTraceServiceRequest, read from the protobuf wire format.

The extractor uses it to look only at spans whose bytes contain an LLM marker, instead of walking the attributes
of every span. Only length-delimited framing is read: ExportTraceServiceRequest.resource_spans (1) →
ResourceSpans.scope_spans (2) → ScopeSpans.spans (2), in the order a parser yields them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def span_ranges(payload: bytes) -> list[tuple[int, int]]:
    """(start, end) byte offsets of every span, in request order. Raises ValueError on malformed framing."""
    ranges: list[tuple[int, int]] = []
    for rs_start, rs_end in _len_fields(payload, 0, len(payload), 1):
        for ss_start, ss_end in _len_fields(payload, rs_start, rs_end, 2):
            ranges.extend(_len_fields(payload, ss_start, ss_end, 2))
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


def _len_fields(buf: bytes, pos: int, end: int, number: int) -> list[tuple[int, int]]:
    """The (start, end) of each length-delimited field `number` of the message in buf[pos:end]."""
    found = []
    while pos < end:
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
                found.append((pos, pos + length))
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
