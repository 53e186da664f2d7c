"""What a component module exports: its `factory` (type, kind, config class, create) and the facts the service
checks before building anything: what the component offers other components, what its settings refer to, and, for
processors, what it needs from the batch and adds to it."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["receivers", "processors", "exporters", "extensions"]
KINDS: tuple[Kind, ...] = ("receivers", "processors", "exporters", "extensions")
# The pipeline types (OTLP signals); processor/pdata/signals.py says what each carries.
TRACES_ONLY = frozenset({"traces"})
EVERY_SIGNAL = frozenset({"traces", "metrics", "logs"})


@dataclass(frozen=True)
class Reference:
    """A setting that names another component, which must exist, run, and offer `capability`.

    An empty `name` means "the only one that offers it". `what` says what is expected, for error messages
    ("a file_storage extension")."""

    path: str  # the YAML path of the setting
    name: str
    kind: Kind
    capability: str
    what: str


@dataclass(frozen=True)
class Factory:
    """`create(settings, config)` builds an exporter or extension; processors also get the consumer they hand
    batches to: `create(settings, config, next_consumer)`; receivers the head of each pipeline they feed, by
    signal: `create(settings, config, {"traces": head, ...})`. Exporters and processors are built once per
    pipeline signal they serve (`settings.signal`). Components are built before any starts, and look up what they
    refer to through `settings.host` when they start.

    `signals` lists the pipeline types the component can be in. `offers` lists capabilities other components may
    refer to (a config may withhold one: see `withheld`). Processors declare the TraceBatch fields they `needs`
    (an earlier stage must add them), `uses` (if a stage adds them, it must come earlier) and `adds`."""

    type: str
    kind: Kind
    config_class: builtins.type
    create: Callable[..., Any]
    signals: frozenset[str] = TRACES_ONLY
    offers: frozenset[str] = frozenset()
    needs: frozenset[str] = frozenset()
    uses: frozenset[str] = frozenset()
    adds: frozenset[str] = frozenset()

    def references(self, config: Any, path: str) -> list[Reference]:
        """The references in a decoded config: from its `references(path)` method, if it has one."""
        method = getattr(config, "references", None)
        return list(method(path)) if method is not None else []

    def withheld(self, config: Any, capability: str) -> str:
        """Why a component with this config does not offer `capability` after all ("" if it does)."""
        if capability not in self.offers:
            return "not offered"
        method = getattr(config, "withheld", None)
        return str(method(capability)) if method is not None else ""


def component_type(name: str) -> str:
    """`otlp/jaeger` → `otlp`."""
    return name.split("/", 1)[0]
