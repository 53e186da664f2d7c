"""Labelled records for training and benchmarking judges: reading, a group-wise split, and length matching.

Records are (query, context, response, label) with label 1 = bad (hallucinated / unfaithful), as in
../shared/data/judge-train and judge-dev. Two dangers in such data, handled here:
- *Leakage between splits*: records of one group (source document, question, dialogue turn) must fall on one side,
  so the split hashes the group, not the record.
- *Shortcuts*: where one class is systematically longer (HaluEval QA: gold answers are short names), a classifier
  learns length. `length_matched` keeps, per response-length bucket, as many bad as good records, so length alone
  carries no signal in what is left.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True, slots=True)
class LabelledRecord:
    id: str
    source: str
    group: str
    query: str
    context: str
    response: str
    label: int  # 1 = bad

    @property
    def has_context(self) -> bool:
        return bool(self.context.strip())


def read_records(path: Path) -> list[LabelledRecord]:
    """One file of the labelled sets; a line without the required fields is an error naming the line."""
    records = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                records.append(LabelledRecord(str(row["id"]), str(row.get("source") or path.stem.split(".")[0]),
                                              str(row.get("group") or row["id"]), str(row.get("query") or ""),
                                              str(row.get("context") or ""), str(row["response"]),
                                              int(row["label"])))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{path}:{number}: not a labelled record ({e})") from e
    return records


def split_by_group(records: Iterable[LabelledRecord], fraction: float, seed: int
                   ) -> tuple[list[LabelledRecord], list[LabelledRecord]]:
    """(rest, held out): about `fraction` of the groups, chosen by a seeded hash of the group, are held out."""
    rest: list[LabelledRecord] = []
    held: list[LabelledRecord] = []
    for record in records:
        digest = hashlib.blake2b(f"{seed}/{record.source}/{record.group}".encode(), digest_size=8).digest()
        (held if int.from_bytes(digest, "big") / 2**64 < fraction else rest).append(record)
    return rest, held


EXACT_WORDS = 24  # up to this many words, every length is a bucket of its own; beyond, powers of two


def length_bucket(text: str) -> int:
    """The response's length in words: exact up to EXACT_WORDS (log2 buckets there left HaluEval QA's length
    shortcut at 0.69 AUROC; exact ones take it to 0.50), then 25-31, 32-63, ..."""
    words = len(text.split())
    return words if words <= EXACT_WORDS else EXACT_WORDS + int(math.log2(words))


def length_matched(records: Sequence[LabelledRecord], seed: int) -> list[LabelledRecord]:
    """Per response-length bucket, as many bad as good records (the surplus of the larger class dropped at
    random, seeded); order kept."""
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        buckets[(length_bucket(record.response), record.label)].append(index)
    rng = random.Random(seed)
    keep: set[int] = set()
    for bucket in {b for b, _ in buckets}:
        good, bad = buckets.get((bucket, 0), []), buckets.get((bucket, 1), [])
        n = min(len(good), len(bad))
        keep.update(rng.sample(good, n))
        keep.update(rng.sample(bad, n))
    return [record for index, record in enumerate(records) if index in keep]


def source_weights(records: Sequence[LabelledRecord], exponent: float) -> np.ndarray:
    """Per record, (records of the largest source / records of its source)^exponent, scaled to mean 1."""
    counts = Counter(r.source for r in records)
    top = max(counts.values())
    weights = np.array([(top / counts[r.source]) ** exponent for r in records], dtype=np.float64)
    normalised: np.ndarray = weights / weights.mean()
    return normalised


def relevancy_pairs(records: Sequence[LabelledRecord], seed: int, n: int = 4000
                    ) -> tuple[list[str], list[str], list[float], list[str]]:
    """(queries, responses, relevant, groups): for `n` sampled good records with a query, (query, its response)
    relevant and (query, the response of another group of the same file that asks something else) not, seeded. (A
    file whose records share one instruction, "Summarize ...", gives no pairs: there another record's response
    answers the query as well.)"""
    rng = random.Random(seed)
    usable = [r for r in records if r.query.strip() and r.response.strip() and r.label == 0]
    sample = rng.sample(usable, min(n, len(usable)))
    by_source: dict[str, list[LabelledRecord]] = defaultdict(list)
    for r in usable:
        by_source[r.source].append(r)
    queries, responses, y, groups = [], [], [], []
    for r in sample:
        other = rng.choice(by_source[r.source])
        if other.group == r.group or other.query.strip() == r.query.strip():
            continue
        queries += [r.query, r.query]
        responses += [r.response, other.response]
        y += [1.0, 0.0]
        groups += [r.group, r.group]
    return queries, responses, y, groups
