"""Client authentication for receivers: the `bearertokenauth` extension, as in the Collector."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from tracejudge.processor.component.errors import ConfigError, PermanentError
from tracejudge.processor.component.factory import Factory
from tracejudge.processor.component.host import CreateSettings


@dataclass(frozen=True)
class BearerTokenAuthConfig:
    """The `bearertokenauth` extension: clients must send `Authorization: <scheme> <token>`."""

    token: str
    scheme: str = "Bearer"

    def validate(self, path: str) -> None:
        if not self.token:
            raise ConfigError(f"{path}.token: must not be empty")


class BearerTokenAuth:
    """An Authenticator (transport.auth) for the servers whose `auth.authenticator` names it."""

    def __init__(self, settings: CreateSettings, config: BearerTokenAuthConfig) -> None:
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


factory = Factory("bearertokenauth", "extensions", BearerTokenAuthConfig, BearerTokenAuth,
                  offers=frozenset({"authenticator"}))
