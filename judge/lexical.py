"""Content words: the lexical helper behind the embedded judge's cheap features and the benchmark's word-overlap
floor."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")
_STOPWORDS = frozenset(
    """a an the and or but if then of in on at to for from by with as is are was were be been being it its this that
    these those i you he she we they them his her their our your my me us do does did not no yes so what which who
    whom whose when where why how than too very can could should would will shall may might must have has had there
    here about into over under also just only""".split()  # noqa: SIM905 - a word list reads best as words
)


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}
