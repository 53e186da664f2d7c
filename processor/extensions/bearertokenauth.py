"""Client authentication for receivers: the `bearertokenauth` extension, as in the Collector."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Protocol

from tracejudge.processor.component.errors import ConfigError, PermanentError


class Authenticator(Protocol):
    def authenticate(self, authorization: str | None) -> None:
        """Raise PermanentError(kind="unauthenticated") unless the Authorization value is acceptable."""


@dataclass(frozen=True)
class BearerTokenAuthConfig:
    """The `bearertokenauth` extension: clients must send `Authorization: <scheme> <token>`."""

    token: str
    scheme: str = "Bearer"

    def validate(self, path: str) -> None:
        if not self.token:
            raise ConfigError(f"{path}.token: must not be empty")


class BearerTokenAuth:
    def __init__(self, config: BearerTokenAuthConfig) -> None:
        self._expected = f"{config.scheme} {config.token}".encode()

    def authenticate(self, authorization: str | None) -> None:
        if authorization is None:
            raise PermanentError("missing authorization header", kind="unauthenticated")
        if not hmac.compare_digest(authorization.strip().encode(), self._expected):
            raise PermanentError("invalid bearer token", kind="unauthenticated")

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None
