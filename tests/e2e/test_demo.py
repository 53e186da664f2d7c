"""`tracejudge demo` end to end, as a newcomer runs it (the CLI in a process of its own), at the smallest traffic it
accepts: the story must raise its three alert causes, feedback must get unsampled traces judged, and what it leaves
behind must be readable with the other commands."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.process import TRACEJUDGE


def test_the_demo_tells_its_story_and_leaves_stores_the_other_commands_read(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    run = subprocess.run([*TRACEJUDGE, "demo", "--calls", "120", "--data", str(data)], capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    for line in ("[raised ] a silent model swap -> model_change", "[raised ] a prompt edit -> prompt_change",
                 "[raised ] input drift -> input_drift"):
        assert line in out
    judged = next(line for line in out.splitlines() if line.startswith("judged "))
    assert "feedback-triggered" in judged and "sampled (uniform)" in judged
    assert "calibration: the faithfulness judge predicts the users' complaints with AUROC" in out
    assert f"tracejudge alerts --config {data / 'demo-config.yaml'}" in out

    config = str(data / "demo-config.yaml")
    alerts = subprocess.run([*TRACEJUDGE, "alerts", "--config", config], capture_output=True, text=True, check=True)
    for cause in ("[model_change]", "[prompt_change]", "[input_drift]"):
        assert cause in alerts.stdout
    golden = subprocess.run([*TRACEJUDGE, "golden", "export", "--config", config, "--out", str(tmp_path / "g.jsonl")],
                            capture_output=True, text=True, check=True)
    assert "judged failures with negative feedback" in golden.stdout
    assert (tmp_path / "g.jsonl").read_text().count("\n") >= 3
