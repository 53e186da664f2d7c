"""Synthetic claim pairs for training (after FactCC, Kryściński et al. 2020): a sentence copied from the context (as
is, cut after its first clause, or joined with the next sentence) is a supported response; the same text with one
number changed, one name swapped for another name (one the context never mentions, or one it mentions elsewhere), or
a negation inserted is an unsupported one. With `addition_share`, some copied sentences also come back with a
sentence of another document of the same file appended: mostly supported, one unsupported addition (the commonest
shape of a RAG answer's hallucination). With `paraphrase_share`, some copied sentences also come back reworded
(`paraphrase`: a fronted phrase moved to the end, a relative clause dropped, a reporting phrase put in front, a
contraction, a small number spelt out, a common word for its synonym), as supported: a copy need not be verbatim.

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


def claim_pairs(records: Sequence[LabelledRecord], share: float, seed: int, addition_share: float = 0.0,
                paraphrase_share: float = 0.0) -> list[LabelledRecord]:
    """For `share` of the records with a context, a (copied sentence, label 0) record and, when the sentence can be
    edited, an (edited sentence, label 1) record; for `addition_share` of those, also the copied sentence followed by
    one from another group's context (label 1), and for `paraphrase_share` the copied sentence reworded (label 0);
    same query, context and group as the record they come from."""
    rng = random.Random(seed + 2)
    additions = random.Random(seed + 3)  # own streams: the other pairs stay what they were without them
    rewordings = random.Random(seed + 4)
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
        if paraphrase_share and rewordings.random() < paraphrase_share:
            reworded = paraphrase(sentence, rewordings)
            if reworded is not None:
                out.append(LabelledRecord(f"{r.id}/reworded", SOURCE, r.group, r.query, r.context, reworded, 0))
    return out


# a fronted phrase, then one clause (with a comma after, the moved phrase could attach to a later clause)
_FRONTED = re.compile(r"^(In|On|At|During|After|Before|By|Since|From|Throughout|Under|Until) ([^,]{2,50}), "
                      r"([A-Za-z][^,;]*?)([.!?])$")
_RELATIVE = re.compile(r", (?:which|who|whose) [^,]{3,60},")
_PARENTHESES = re.compile(r" \([^()]{1,60}\)")
_LOWERABLE = {"The", "A", "An", "It", "This", "That", "These", "Those", "They", "He", "She", "We", "There", "Its",
              "His", "Her", "Their", "Some", "Many", "Most", "Each", "Every", "All", "In", "On", "At", "During",
              "After", "Before", "By", "Since", "From", "Throughout", "Under", "Until"}
REPORTING = ("According to the text, ", "The passage says that ", "As stated, ", "It says that ")
_CONTRACTIONS = {"is not": "isn't", "are not": "aren't", "was not": "wasn't", "were not": "weren't",
                 "do not": "don't", "does not": "doesn't", "did not": "didn't", "cannot": "can't",
                 "could not": "couldn't", "has not": "hasn't", "have not": "haven't", "will not": "won't"}
_SYNONYMS = {"approximately": "about", "roughly": "about", "large": "big", "big": "large", "begin": "start",
             "began": "started", "begins": "starts", "purchase": "buy", "purchased": "bought", "assist": "help",
             "assisted": "helped", "numerous": "many", "rapidly": "quickly", "quickly": "rapidly",
             "famous": "well-known", "well-known": "famous", "situated": "located", "residents": "inhabitants",
             "inhabitants": "residents", "film": "movie", "movie": "film", "films": "movies", "movies": "films",
             "author": "writer", "writer": "author", "automobile": "car", "currently": "now", "frequently": "often",
             "often": "frequently", "nearly": "almost", "almost": "nearly", "entire": "whole", "whole": "entire",
             "obtain": "get", "obtained": "got", "commenced": "began", "additionally": "also", "however": "but"}
_SMALL = {"2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven", "8": "eight", "9": "nine"}


def _reworded(kind: str, text: str, rng: random.Random) -> str | None:
    """`text` with one rewording of `kind`, or None when it does not apply."""
    if kind == "fronted":
        m = _FRONTED.match(text)
        return f"{m[3][0].upper()}{m[3][1:]} {m[1].lower()} {m[2]}{m[4]}" if m else None
    if kind == "relative":
        found = list(_RELATIVE.finditer(text)) + list(_PARENTHESES.finditer(text))
        if not found:
            return None
        m = rng.choice(found)
        return text[:m.start()] + ("," if m[0].startswith(",") and text[m.end():].startswith(" and") else "") \
            + text[m.end():]
    if kind == "reporting":
        first, _, rest = text.partition(" ")
        return rng.choice(REPORTING) + (first.lower() if first in _LOWERABLE else first) + " " + rest
    if kind == "contraction":
        spelt = list(re.finditer(r"\b(?:" + "|".join(_CONTRACTIONS) + r")\b", text))
        if not spelt:
            return None
        hit = rng.choice(spelt)
        return text[:hit.start()] + _CONTRACTIONS[hit[0]] + text[hit.end():]
    if kind == "number":
        found = [m for m in re.finditer(r"(?<![\d.,$%-])\b[2-9]\b(?![\d.,%])", text)]
        if not found:
            return None
        m = rng.choice(found)
        return text[:m.start()] + _SMALL[m[0]] + text[m.end():]
    found = [m for m in re.finditer(r"\b[A-Za-z-]+\b", text) if m[0].lower() in _SYNONYMS]
    if not found:
        return None
    m = rng.choice(found)
    word = _SYNONYMS[m[0].lower()]
    return text[:m.start()] + (word.capitalize() if m[0][0].isupper() else word) + text[m.end():]


REWORDINGS = ("fronted", "relative", "reporting", "contraction", "number", "synonym")


def paraphrase(sentence: str, rng: random.Random) -> str | None:
    """`sentence` reworded so that it says the same (one or two rewordings that apply, never the reporting phrase
    alone when another applies), or None when none does."""
    applicable = [k for k in REWORDINGS if k != "reporting" and _reworded(k, sentence, rng) is not None]
    kinds = rng.sample(applicable, min(len(applicable), rng.choice((1, 2)))) or ["reporting"]
    if "reporting" not in kinds and rng.random() < 0.25:
        kinds.append("reporting")
    text = sentence
    for kind in kinds:  # the reporting phrase goes last: it changes how the sentence starts
        text = _reworded(kind, text, rng) or text
    return text if text != sentence else None


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
