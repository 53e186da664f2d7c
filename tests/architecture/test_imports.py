"""The layering the README's code map promises, read from the import statements (deferred imports included)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"processor": "tracejudge.processor", "judge": "tracejudge.judge", "stats": "tracejudge.stats"}
CONTRACTS = ("tracejudge.processor.component", "tracejudge.processor.pdata")
COMPONENT_KINDS = ("receivers", "processors", "exporters", "extensions")


def imports(folder: str) -> dict[str, set[str]]:
    """Module path (relative to ROOT) → the tracejudge modules it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        package = ".".join([PACKAGES[folder], *path.relative_to(ROOT / folder).parent.parts])
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                names.add(base)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(ROOT))] = {n for n in names if n.startswith("tracejudge.")}
    return found


@pytest.mark.parametrize("folder", ["judge", "stats"])
def test_judge_and_stats_use_only_the_contracts_of_processor(folder: str) -> None:
    wrong = {module: sorted(n for n in names if n.startswith("tracejudge.processor") and not n.startswith(CONTRACTS))
             for module, names in imports(folder).items()}
    assert not {m: n for m, n in wrong.items() if n}


def test_the_contracts_import_nothing_but_each_other() -> None:
    found = imports("processor")
    for module, names in found.items():
        if module.startswith(("processor/component/", "processor/pdata/")):
            outside = [n for n in names if not n.startswith(CONTRACTS)]
            if module.startswith("processor/component/"):
                outside += [n for n in names if n.startswith("tracejudge.processor.pdata")]
            assert not outside, f"{module} imports {outside}"


def test_the_service_names_no_concrete_component() -> None:
    for module, names in imports("processor").items():
        if module.startswith("processor/service/"):
            concrete = [n for n in names if n.split(".")[2:3] and n.split(".")[2] in COMPONENT_KINDS]
            assert not concrete, f"{module} imports {concrete}: components are found through service/factories.py"


def test_components_do_not_import_each_other() -> None:
    """A component reaches another through the host; what they share lives in component/, pdata/ or transport/."""
    for module, names in imports("processor").items():
        parts = module.split("/")
        if len(parts) < 3 or parts[1] not in COMPONENT_KINDS:
            continue
        own = ".".join(["tracejudge.processor", parts[1], parts[2].removesuffix(".py")])
        helper = "tracejudge.processor.exporters.helper"
        others = [n for n in names if n.split(".")[2:3] and n.split(".")[2] in COMPONENT_KINDS
                  and not n.startswith(own) and not n.startswith(helper)]
        assert not others, f"{module} imports {others}"


def test_help_loads_no_subcommand_and_validate_no_heavy_library(tmp_path: Path) -> None:
    probe = ("import sys; from tracejudge.processor.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "heavy = [m for m in ('scipy', 'onnxruntime', 'matplotlib', 'numpy', 'tracejudge.processor.cli.demo',"
             " 'tracejudge.processor.service.service') if m in sys.modules]\n"
             "print('LOADED:', *heavy)")
    config = ROOT / "otel-config.yaml"
    for argv, allowed in ((["--help"], set()), (["validate", "--config", str(config)], set())):
        result = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True)
        marker = next(line for line in result.stdout.splitlines() if line.startswith("LOADED:"))
        loaded = set(marker.split()[1:])
        assert loaded <= allowed, f"tracejudge {' '.join(argv)} loaded {sorted(loaded)}"
