"""proto/gen is what `make proto` produces from proto/: never edited by hand, never stale."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_current(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "proto" / "generate.py"), "--out", str(tmp_path)], check=True)
    committed = ROOT / "proto" / "gen"
    generated = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    on_disk = {p.relative_to(committed): p.read_bytes() for p in committed.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert sorted(generated) == sorted(on_disk), "run `make proto` and commit proto/gen"
    stale = [str(name) for name, content in generated.items() if on_disk[name] != content]
    assert not stale, f"stale generated code: {stale}; run `make proto` and commit proto/gen"
