"""Personal data in text: e-mail addresses, phone numbers and payment card numbers (with a valid Luhn checksum).
The `pii` check asks whether an answer holds any; redaction replaces every one before text leaves for a judge
server. All three are found in time linear in the text (bounded patterns; e-mail addresses from each "@")."""

from __future__ import annotations

import re
from collections.abc import Iterator

DETECTORS = ("email", "phone", "card")

# An e-mail address is found from its "@": local-part characters before it, and after it a run of domain
# characters holding "<char>.<two letters>" (what [local]+@[domain]+\.[A-Za-z]{2,} matches, found in linear time).
_EMAIL_LOCAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_EMAIL_DOMAIN_RUN = re.compile(r"[A-Za-z0-9.-]*")
_EMAIL_TLD = re.compile(r"[A-Za-z0-9.-]\.[A-Za-z]{2}")
# International (+CC ...) or North American ((555) 123-4567, 555-123-4567); bare digit groups are left to _CARD.
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,4}[\s.-]?\d{2,4}"
                    r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w])")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_DIGIT = re.compile(r"\d")


def emails(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each e-mail address. Each "@" looks back no further than the "@" (or address) before it and
    ahead to the end of its domain run, where the next search starts: linear in the text."""
    at = text.find("@")
    floor = 0
    while at != -1:
        run = _EMAIL_DOMAIN_RUN.match(text, at + 1)
        end = run.end() if run else at + 1
        if at > floor and text[at - 1] in _EMAIL_LOCAL and _EMAIL_TLD.search(text, at + 1, end):
            start = at - 1
            while start > floor and text[start - 1] in _EMAIL_LOCAL:
                start -= 1
            while text[end - 1] in ".-":  # a sentence's full stop is not part of the domain
                end -= 1
            yield start, end
            floor = end
        else:
            floor = at + 1
        at = text.find("@", max(end, at + 1))


def phones(text: str) -> Iterator[tuple[int, int]]:
    if _DIGIT.search(text):
        yield from (m.span() for m in _PHONE.finditer(text))


def cards(text: str) -> Iterator[tuple[int, int]]:
    if _DIGIT.search(text):
        yield from (m.span() for m in _CARD.finditer(text) if luhn(re.sub(r"\D", "", m.group(0))))


def luhn(digits: str) -> bool:
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


FINDERS = {"email": emails, "phone": phones, "card": cards}
