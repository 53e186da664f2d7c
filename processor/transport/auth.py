"""Client authentication, as every server of ours takes it: `auth: {authenticator: <extension name>}` names an
extension that offers `authenticator` (bearertokenauth)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tracejudge.processor.component.factory import Reference


class Authenticator(Protocol):
    def authenticate(self, authorization: str | None) -> None:
        """Raise PermanentError(kind="unauthenticated") unless the Authorization value is acceptable."""


@dataclass(frozen=True)
class AuthConfig:
    authenticator: str  # the name of an extension, e.g. bearertokenauth

    def reference(self, path: str) -> Reference:
        return Reference(f"{path}.authenticator", self.authenticator, "extensions", "authenticator",
                         "a bearertokenauth extension")
