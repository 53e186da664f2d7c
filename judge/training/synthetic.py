"""Synthetic claim pairs for training (after FactCC, Kryściński et al. 2020): a sentence copied from the context (as
is, cut after its first clause, or joined with the next sentence) is a supported response; the same text with one
number changed, one name swapped for another name (one the context never mentions, or one it mentions elsewhere), or
a negation inserted is an unsupported one. With `addition_share`, some copied sentences also come back with a
sentence of another document of the same file appended: mostly supported, one unsupported addition (the commonest
shape of a RAG answer's hallucination).

The two responses of a pair differ by one edit, so only reading the context separates them: this teaches what the
labelled sets do not (their good and bad responses differ in style), e.g. that a near-verbatim answer is supported.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Sequence

from ..embedded_text import sentences
from .data import LabelledRecord

SOURCE = "synthetic"
MIN_WORDS, MAX_WORDS = 6, 40
_NUMBER = re.compile(r"\b\d+\b")
_NAME = re.compile(r"(?<=\s)[A-Z][a-z]{2,}\b")  # capitalised, not the first word of the sentence
_NEGATABLE = re.compile(r"\b(is|was|are|were|can|will)\b")


def claim_pairs(records: Sequence[LabelledRecord], share: float, seed: int, addition_share: float = 0.0
                ) -> list[LabelledRecord]:
    """For `share` of the records with a context, a (copied sentence, label 0) record and, when the sentence can be
    edited, an (edited sentence, label 1) record; for `addition_share` of those, also the copied sentence followed by
    one from another group's context (label 1); same query, context and group as the record they come from."""
    rng = random.Random(seed + 2)
    additions = random.Random(seed + 3)  # its own stream: the other pairs stay what they were without it
    names: dict[str, set[str]] = defaultdict(set)
    others: dict[str, list[LabelledRecord]] = defaultdict(list)
    for r in records:
        names[r.source].update(_NAME.findall(r.context))
        if r.has_context:
            others[r.source].append(r)
    out: list[LabelledRecord] = []
    for r in records:
        if not r.has_context or rng.random() >= share:
            continue
        candidates = [s for s in sentences(r.context) if MIN_WORDS <= len(s.split()) <= MAX_WORDS]
        if not candidates:
            continue
        sentence = supported_form(rng.choice(candidates), r.context, rng)
        base = LabelledRecord(f"{r.id}/copied", SOURCE, r.group, r.query, r.context, sentence, 0)
        out.append(base)
        edited = edit(sentence, r.context, sorted(names[r.source]), rng)
        if edited is not None:
            out.append(LabelledRecord(f"{r.id}/edited", SOURCE, r.group, r.query, r.context, edited, 1))
        if addition_share and additions.random() < addition_share:
            added = addition(sentence, r, others[r.source], additions)
            if added is not None:
                out.append(LabelledRecord(f"{r.id}/added", SOURCE, r.group, r.query, r.context, added, 1))
    return out


def addition(sentence: str, record: LabelledRecord, others: Sequence[LabelledRecord], rng: random.Random
             ) -> str | None:
    """`sentence` followed by a sentence of another group's context that this context does not hold, or None."""
    other = rng.choice(others)
    if other.group == record.group:
        return None
    candidates = [s for s in sentences(other.context)
                  if MIN_WORDS <= len(s.split()) <= MAX_WORDS and s not in record.context]
    if not candidates or len(sentence.split()) > MAX_WORDS:
        return None
    return f"{sentence} {rng.choice(candidates)}"


def supported_form(sentence: str, context: str, rng: random.Random) -> str:
    """The copied `sentence` as is (half the time), cut at its first comma, or joined with the sentence after it."""
    choice = rng.random()
    head, _, tail = sentence.partition(", ")
    if choice < 0.25 and tail and len(head.split()) >= MIN_WORDS // 2 + 1:
        return head.rstrip(".") + "."
    if choice >= 0.75:
        following = sentences(context[context.find(sentence) + len(sentence):])
        if following and len(sentence.split()) + len(following[0].split()) <= MAX_WORDS:
            return f"{sentence} {following[0]}"
    return sentence


def edit(sentence: str, context: str, names: Sequence[str], rng: random.Random) -> str | None:
    """`sentence` with one unsupported change, or None when it has no number, name or verb to change."""
    lowered = context.lower()
    strangers = [n for n in names if n.lower() not in lowered]
    in_sentence = set(_NAME.findall(sentence))
    neighbours = sorted(set(_NAME.findall(context)) - in_sentence)
    options = []
    if _NUMBER.search(sentence):
        options.append("number")
    if in_sentence and strangers:
        options.append("name")
    if in_sentence and neighbours:
        options.append("swap")  # a name from elsewhere in the context: only reading the relation tells
    if _NEGATABLE.search(sentence):
        options.append("negation")
    if not options:
        return None
    kind = rng.choice(options)
    if kind == "number":
        match = rng.choice(list(_NUMBER.finditer(sentence)))
        value = int(match.group())
        changed = value + rng.choice([-1, 1]) * rng.randint(1, max(2, value // 4))
        while str(changed) in context or changed < 0:
            changed += rng.randint(1, 9)
        return sentence[:match.start()] + str(changed) + sentence[match.end():]
    if kind in ("name", "swap"):
        match = rng.choice(list(_NAME.finditer(sentence)))
        replacement: str = rng.choice(strangers if kind == "name" else neighbours)
        return sentence[:match.start()] + replacement + sentence[match.end():]
    match = rng.choice(list(_NEGATABLE.finditer(sentence)))
    return sentence[:match.end()] + " not" + sentence[match.end():]
