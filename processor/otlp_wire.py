"""Where each span lies in a serialized ExportTraceServiceRequest, read from the protobuf wire format.

The extractor uses it to look only at spans whose bytes contain an LLM marker, instead of walking the attributes
of every span. Only length-delimited framing is read: ExportTraceServiceRequest.resource_spans (1) →
ResourceSpans.scope_spans (2) → ScopeSpans.spans (2), in the order a parser yields them.
"""

from __future__ import annotations

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
    hits = sorted(_occurrences(payload, markers))
    if not hits:
        return set()
    found: set[int] = set()
    h = 0
    for index, (start, end) in enumerate(span_ranges(payload)):
        while h < len(hits) and hits[h] < start:
            h += 1
        if h < len(hits) and hits[h] < end:
            found.add(index)
    return found


def _occurrences(payload: bytes, markers: Iterable[bytes]) -> list[int]:
    offsets = []
    for marker in markers:
        at = payload.find(marker)
        while at >= 0:
            offsets.append(at)
            at = payload.find(marker, at + len(marker))
    return offsets


def _len_fields(buf: bytes, pos: int, end: int, number: int) -> list[tuple[int, int]]:
    """The (start, end) of each length-delimited field `number` of the message in buf[pos:end]."""
    found = []
    while pos < end:
        key, pos = _varint(buf, pos)
        wire_type = key & 7
        if wire_type == _LEN:
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
