"""A user's (or reviewer's) feedback on a trace: from the EvalService or from span attributes, joined with
evaluations on trace id."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")

# A rating at or below this share of its scale is negative feedback; at or above POSITIVE_RATING, positive.
NEGATIVE_RATING = 0.4  # 1 or 2 stars of 5
POSITIVE_RATING = 0.8  # 4 or 5 stars of 5


@dataclass(frozen=True)
class Feedback:
    """A user's (or reviewer's) reaction to a trace or one span of it; joined with evaluations on trace id."""

    trace_id: str  # hex
    span_id: str = ""  # hex; "" for the whole trace
    feedback_id: str = ""  # idempotency key (`identified` derives one from the content when empty)
    time_unix_nano: int = 0
    thumbs: int = 0  # +1 up, -1 down, 0 none
    rating: float | None = None  # in [0, 1]: the rating over its scale
    regenerated: bool = False
    edited_text: str = ""
    comment: str = ""
    source: str = ""
    labels: tuple[tuple[str, bool], ...] = ()  # (metric, passed): a reviewer's verdicts

    @property
    def reason(self) -> str:
        """Why this is negative feedback ("" if it is not): thumbs_down | regenerated | edited | low_rating."""
        if self.thumbs < 0:
            return "thumbs_down"
        if self.regenerated:
            return "regenerated"
        if self.edited_text:
            return "edited"
        if self.rating is not None and self.rating <= NEGATIVE_RATING:
            return "low_rating"
        return ""

    @property
    def negative(self) -> bool:
        return bool(self.reason)

    @property
    def positive(self) -> bool:
        return not self.negative and (self.thumbs > 0 or (self.rating is not None and self.rating >= POSITIVE_RATING))

    def identified(self) -> Feedback:
        """With a feedback_id: the given one, else a hash of the content (a resent record is stored once)."""
        if self.feedback_id:
            return self
        content = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return dataclasses.replace(self, feedback_id="fb-" + hashlib.sha256(content).hexdigest()[:24])

    def row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["labels"] = json.dumps([list(label) for label in self.labels])
        row["negative"] = self.negative
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Feedback:
        values = {f.name: row[f.name] for f in dataclasses.fields(cls)}
        values["labels"] = tuple((str(m), bool(p)) for m, p in json.loads(row["labels"]))
        values["regenerated"] = bool(row["regenerated"])
        return cls(**values)


def problems(record: Feedback, path: str) -> list[str]:
    """What is wrong with a feedback record from outside, each problem naming its field under `path`."""
    found = []
    if not _TRACE_ID.fullmatch(record.trace_id) or record.trace_id == "0" * 32:
        found.append(f"{path}.trace_id: {record.trace_id!r} is not a trace id (32 lowercase hex digits, not all 0)")
    if record.span_id and (not _SPAN_ID.fullmatch(record.span_id) or record.span_id == "0" * 16):
        found.append(f"{path}.span_id: {record.span_id!r} is not a span id (16 lowercase hex digits) or empty")
    if record.rating is not None and not 0 <= record.rating <= 1:
        found.append(f"{path}.rating: must be between 0 and rating_max")
    if record.thumbs not in (-1, 0, 1):
        found.append(f"{path}.thumbs: must be up, down or unset")
    if not (record.thumbs or record.rating is not None or record.regenerated or record.edited_text
            or record.comment or record.labels):
        found.append(f"{path}: carries nothing (give thumbs, rating, regenerated, edited_text, comment or labels)")
    return found


@dataclass(frozen=True)
class FeedbackReceipt:
    accepted: int  # feedback records stored now (repeats of stored ones are not counted)
    queued: int  # judge items queued because of them
    awaiting_trace: int  # traces with negative feedback that have not arrived yet
