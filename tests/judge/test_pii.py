"""Personal data detectors: what they find, and that they find it in time linear in the text."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.growth import growth
from tracejudge.judge.pii import FINDERS


def found(detector: str, text: str) -> list[str]:
    return [text[start:end] for start, end in FINDERS[detector](text)]


def test_an_e_mail_address_is_found_where_the_old_pattern_found_it() -> None:
    for text, expected in (("write to ann.lee+x@mail.example.org today", True), ("a@b.co", True), ("@b.co", False),
                           ("a@b.c", False), ("a@.co", False), ("a@bco", False), ("x@y@z.io", True),
                           ("me@localhost and you@host.d e", False)):
        assert bool(found("email", text)) is expected, text


def test_each_find_is_located_exactly() -> None:
    text = "Mail jane.doe@example.com. Or a@b.com@c.org; call +1 555 123 4567 or (555) 123-4567, card 4111 1111 " \
           "1111 1111, not 4111 1111 1111 1112."
    assert found("email", text) == ["jane.doe@example.com", "a@b.com"]
    assert found("phone", text) == ["+1 555 123 4567", "(555) 123-4567"]
    assert found("card", text) == ["4111 1111 1111 1111"]  # the other fails the Luhn checksum


HOSTILE: dict[str, Callable[[int], str]] = {
    "one long local part, then @": lambda n: "a" * n + "@",
    "many @ with long domains": lambda n: ("x@" + "b" * 50) * (n // 52),
    "@ runs with dots": lambda n: ("a.b@" * (n // 4)),
    "digits without end": lambda n: "1 " * (n // 2),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("detector", sorted(FINDERS))
def test_detectors_are_linear_in_the_text(case: str, detector: str) -> None:
    def run_at(n: int) -> Callable[[], object]:
        text = HOSTILE[case](n)
        return lambda: list(FINDERS[detector](text))

    assert growth(run_at, 20_000) < 24  # 8 times the input: ~8 times the work when linear
