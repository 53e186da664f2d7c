"""Turns parsed YAML into frozen config dataclasses, naming the YAML path of every problem.

Rules, the same for every component: an unknown key is an error; a field without a default is required; a
dataclass-typed key given as null means "all defaults" (as `protocols: {grpc:}` does in the Collector); after
decoding, each dataclass's optional `validate(path)` checks values and raises ConfigError.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from tracejudge.processor.component.errors import ConfigError

T = TypeVar("T")

# A duration field holds seconds; in YAML it is written as in the Collector: "5s", "250ms", "1m30s".
DURATION = "duration"
Duration = Annotated[float, DURATION]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_ENV_REF = re.compile(r"\$\$|\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration string; raises ValueError if it is not one."""
    text = text.strip()
    if text == "0":
        return 0.0
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration; write it like '5s', '250ms' or '1m30s'")
    return sum(float(n) * _DURATION_UNIT_S[u] for n, u in parts)


def expand_env(node: Any, environ: Mapping[str, str], path: str, problems: list[str]) -> Any:
    """Replace `${env:NAME}` / `${env:NAME:-default}` (and `${NAME}`) in string values; `$$` is a literal `$`.

    A value that is exactly one reference becomes an EnvText: a string setting takes its text as is (a token
    `0123` stays `0123`), any other setting its YAML reading, so `${env:PORT}` can be a number.
    An unset variable without a default is an error: silently using "" could, say, turn auth off.
    """
    if isinstance(node, dict):
        return {k: expand_env(v, environ, _join(path, str(k)), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [expand_env(v, environ, f"{path}[{i}]", problems) for i, v in enumerate(node)]
    if not isinstance(node, str) or "$" not in node:
        return node

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        problems.append(f"{path}: environment variable {name} is not set (set it, or write ${{env:{name}:-default}})")
        return ""

    expanded = _ENV_REF.sub(substitute, node)
    whole = _ENV_REF.fullmatch(node)
    if whole and whole.group(0) != "$$":
        return EnvText(expanded)
    return expanded


class EnvText(str):
    """The text an environment variable supplied; `value` is what YAML would read it as."""

    @property
    def value(self) -> Any:
        try:
            return yaml.safe_load(self) if self else str(self)
        except yaml.YAMLError:
            return str(self)


def decode(cls: type[T], raw: Any, path: str, problems: list[str]) -> T | None:
    """Build `cls` from `raw`, appending `path: message` lines to `problems`; None if it could not be built."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(f"{path}: expected a mapping of settings, got {_describe(raw)}")
        return None
    hints = get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in raw:
        if key not in fields:
            known = ", ".join(sorted(fields)) or "none"
            problems.append(f"{_join(path, str(key))}: unknown key (known keys: {known})")
    values: dict[str, Any] = {}
    before = len(problems)
    for name, field in fields.items():
        sub = _join(path, name)
        if name in raw:
            values[name] = _decode_value(hints[name], raw[name], sub, problems)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            problems.append(f"{sub}: required")
    if len(problems) > before:
        return None
    obj = cls(**values)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate(path)
        except ConfigError as e:
            problems.extend(e.problems)
    return obj


def _decode_value(tp: Any, raw: Any, path: str, problems: list[str]) -> Any:
    origin = get_origin(tp)
    if isinstance(raw, EnvText) and origin not in (Union, types.UnionType):
        wants_text = tp is str or origin is Literal or (origin is Annotated and DURATION in get_args(tp))
        raw = str(raw) if wants_text else raw.value
    if origin is Annotated:
        base, *meta = get_args(tp)
        if DURATION in meta:
            return _decode_duration(raw, path, problems)
        return _decode_value(base, raw, path, problems)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        if raw is None and len(options) == 1 and dataclasses.is_dataclass(options[0]):
            # `grpc:` with no value: enabled, with all defaults
            return decode(typing.cast(type, options[0]), {}, path, problems)
        if raw is None:
            return None
        return _decode_value(options[0], raw, path, problems)
    if dataclasses.is_dataclass(tp):
        return decode(typing.cast(type, tp), raw, path, problems)
    if origin is Literal:
        allowed = get_args(tp)
        if raw not in allowed:
            problems.append(f"{path}: must be one of {', '.join(map(str, allowed))}, got {raw!r}")
        return raw
    if origin is tuple:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            problems.append(f"{path}: expected a list, got {_describe(raw)}")
            return ()
        item = get_args(tp)[0]
        return tuple(_decode_value(item, v, f"{path}[{i}]", problems) for i, v in enumerate(raw))
    if origin is dict:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            problems.append(f"{path}: expected a mapping, got {_describe(raw)}")
            return {}
        _, value_tp = get_args(tp)
        return {str(k): _decode_value(value_tp, v, _join(path, str(k)), problems) for k, v in raw.items()}
    return _decode_scalar(tp, raw, path, problems)


def _decode_scalar(tp: Any, raw: Any, path: str, problems: list[str]) -> Any:
    if tp is bool:
        if not isinstance(raw, bool):
            problems.append(f"{path}: expected true or false, got {_describe(raw)}")
        return raw
    if tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            problems.append(f"{path}: expected an integer, got {_describe(raw)}")
        return raw
    if tp is float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            problems.append(f"{path}: expected a number, got {_describe(raw)}")
            return raw
        return float(raw)
    if tp is str:
        if isinstance(raw, (dict, list)) or raw is None:
            problems.append(f"{path}: expected a string, got {_describe(raw)}")
            return raw
        if isinstance(raw, bool):  # YAML reads `token: true` as a boolean; the user meant the word
            return "true" if raw else "false"
        return str(raw)  # e.g. `token: 12345`
    raise TypeError(f"config field type {tp!r} at {path} is not supported by the decoder")


def _decode_duration(raw: Any, path: str, problems: list[str]) -> float:
    if isinstance(raw, str):
        try:
            return parse_duration(raw)
        except ValueError as e:
            problems.append(f"{path}: {e}")
            return 0.0
    if raw == 0 and not isinstance(raw, bool):
        return 0.0
    problems.append(f"{path}: expected a duration with a unit like '5s' or '250ms', got {_describe(raw)}")
    return 0.0


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(raw: Any) -> str:
    if raw is None:
        return "nothing"
    if isinstance(raw, dict):
        return "a mapping"
    if isinstance(raw, list):
        return "a list"
    return f"{type(raw).__name__} {raw!r}"
