"""Text preparation shared by the embedded judge and its training: what the model sees, and the cheap features that
sit beside it in the calibrated model. Pure Python, so training (torch) and serving (onnxruntime) cannot drift apart.

Long contexts do not fit the model's window. `select_context` keeps the context sentences that share the most
content words with the response, in their original order, up to a word budget: one window per judgement, whatever
the document's length (measured against the first window and against the best of several windows in the model
card).
"""

from __future__ import annotations

import itertools
import re

from .lexical import content_words

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# capitalised words not at the start of a sentence (where capitals say nothing)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*")
SEPARATOR = " ... "


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def words(text: str) -> int:
    return len(text.split())


def select_context(context: str, response: str, budget_words: int) -> str:
    """The context itself when it fits `budget_words`; otherwise its sentences with the most response content
    words (ties: earlier first), kept in document order, joined by SEPARATOR where sentences were skipped."""
    if words(context) <= budget_words:
        return context.strip()
    parts = sentences(context)
    claimed = content_words(response)
    ranked = sorted(range(len(parts)), key=lambda i: (-len(content_words(parts[i]) & claimed), i))
    chosen: list[int] = []
    used = 0
    for index in ranked:
        size = words(parts[index])
        if used + size > budget_words:
            if not chosen:  # the best sentence is longer than the whole budget: its head, and nothing else
                parts[index] = " ".join(parts[index].split()[:budget_words])
                return parts[index]
            continue
        chosen.append(index)
        used += size
    chosen.sort()
    out = parts[chosen[0]]
    for previous, index in itertools.pairwise(chosen):
        out += (" " if index == previous + 1 else SEPARATOR) + parts[index]
    return out


def context_windows(context: str, budget_words: int) -> list[str]:
    """The context cut into consecutive windows of whole sentences, each within `budget_words` (a longer
    sentence is a window of its own, cut at the budget)."""
    windows: list[str] = []
    current: list[str] = []
    used = 0
    for sentence in sentences(context):
        size = words(sentence)
        if current and used + size > budget_words:
            windows.append(" ".join(current))
            current, used = [], 0
        current.append(" ".join(sentence.split()[:budget_words]))
        used += min(size, budget_words)
    if current:
        windows.append(" ".join(current))
    return windows or [""]


def context_budget(response: str, window_words: int, min_context_words: int) -> int:
    """How many context words fit next to `response` in a window of `window_words`."""
    return max(min_context_words, window_words - words(response))


def window(context: str, response: str, window_words: int, min_context_words: int) -> tuple[str, str]:
    """The (context, response) pair the cross-encoder reads: the context cut to fit beside the response."""
    return select_context(context, response, context_budget(response, window_words, min_context_words)), response


FEATURES = ("unsupported_numbers", "unsupported_names", "word_support")


def _claimed(response: str) -> tuple[set[str], set[str]]:
    """Numbers and capitalised names (not sentence-initial) in the response."""
    return set(_NUMBER.findall(response)), set(_NAME.findall(response))


def unsupported(context: str, response: str) -> list[str]:
    """The response's numbers and names that the context never mentions, numbers first."""
    numbers, names = _claimed(response)
    lowered = context.lower()
    return ([n for n in sorted(numbers) if n not in context] +
            [n for n in sorted(names) if n.lower() not in lowered])


def features(context: str, response: str) -> list[float]:
    """Cheap signals the encoder is weak at: the shares of the response's numbers and of its names that the
    context never mentions (0 when it has none) and the share of its content words the context holds."""
    numbers, names = _claimed(response)
    lowered = context.lower()
    claimed = content_words(response)
    return [
        sum(n not in context for n in numbers) / len(numbers) if numbers else 0.0,
        sum(n.lower() not in lowered for n in names) / len(names) if names else 0.0,
        len(claimed & content_words(context)) / len(claimed) if claimed else 1.0,
    ]
