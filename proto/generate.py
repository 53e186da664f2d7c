"""Generates the Python code of proto/ (`make proto`): python proto/generate.py [--out DIR]. The output goes to
proto/gen, is committed and never edited by hand; tests/proto/test_generate.py checks it equals what this produces."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent
SOURCES = ("tracejudge/v1/eval_service.proto",)


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for source in SOURCES:
        status = protoc.main(["grpc_tools.protoc", f"-I{ROOT}", f"--python_out={out}", f"--pyi_out={out}",
                              f"--grpc_python_out={out}", str(ROOT / source)])
        if status != 0:
            sys.exit(f"protoc failed on {source} (exit {status})")
        package = out / Path(source).parent
        (package / "__init__.py").write_text('"""Generated from proto/ by proto/generate.py: do not edit."""\n')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "gen")
    generate(parser.parse_args().out)
