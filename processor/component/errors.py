"""Errors that cross component boundaries; transport/status.py alone maps them to gRPC and HTTP statuses.

    TracejudgeError
    ├── ConfigError      the configuration is invalid; every problem is listed, each naming its YAML path
    ├── PermanentError   the input is bad: sending the same request again cannot succeed
    ├── RetryableError   overload or a transient failure: the same request may succeed later
    └── StorageError     a store cannot be opened or read (also an OSError: the service cannot start)
"""

from __future__ import annotations


class TracejudgeError(Exception):
    """Base of every error tracejudge raises on purpose."""


class ConfigError(TracejudgeError):
    """One or more configuration problems, each a line `yaml.path: what is wrong`."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class PermanentError(TracejudgeError):
    """Bad input (malformed, oversized, unauthenticated): retrying won't help."""

    def __init__(self, message: str, *, kind: str = "invalid") -> None:
        super().__init__(message)
        # kind: "invalid" | "too_large" | "unauthenticated" | "unsupported_media_type"
        self.kind = kind


class RetryableError(TracejudgeError):
    """A temporary refusal; `retry_after_s` is how long the sender should wait, when known."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StorageError(TracejudgeError, OSError):
    """A store cannot be opened or read: a bad path, a database written by a newer tracejudge, a full disk."""


class StoreMissing(StorageError):
    """A store opened for reading does not exist yet: nothing was stored there."""
