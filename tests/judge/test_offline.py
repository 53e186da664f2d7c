"""`tracejudge judge`: JSONL in and out through the embedded judge, a heavy server or the cascade."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.openai_server import Completion, OpenAiServer
from tracejudge.judge.cascade import Cascade, CascadeConfig
from tracejudge.judge.embedded import EmbeddedJudge
from tracejudge.judge.offline import judge_file
from tracejudge.judge.verdict import JudgeInput

CONTEXT = "Paris is the capital and largest city of France, with 2.1 million residents."


async def test_judge_file_writes_one_verdict_per_record() -> None:
    records = [{"id": "a", "query": "Capital of France?", "context": [CONTEXT], "response": "Paris."},
               {"id": "b", "query": "Capital of France?", "context": "", "response": "Paris."}]
    source = io.StringIO("\n".join(json.dumps(r) for r in records) + "\n")
    sink, progress = io.StringIO(), io.StringIO()
    embedded = EmbeddedJudge()
    local_only = Cascade(embedded, None, CascadeConfig())
    assert await judge_file(source, sink, "faithfulness", local_only, progress) == (2, 1)
    out = [json.loads(line) for line in sink.getvalue().splitlines()]
    (direct,) = await embedded.judge([JudgeInput("faithfulness", "Capital of France?", "Paris.", CONTEXT)])
    assert [(o["id"], o["label"], o["error.type"]) for o in out] == [("a", direct.label, None), ("b", "", "no_context")]
    assert out[0]["score"] == direct.score and direct.label in ("pass", "fail")
    assert out[0]["judge_model"] == "tracejudge-minilm-faithfulness"
    assert "judged 2 record(s), 1 unjudged" in progress.getvalue()


def test_cli_names_the_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "in.jsonl"
    bad.write_text('{"id": 1, "response": "ok"}\nnot json\n')
    result = subprocess.run([sys.executable, "-m", "tracejudge.processor.cli", "judge", "--input", str(bad),
                             "--output", str(tmp_path / "out.jsonl")], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "line 2: not JSON" in result.stderr


async def test_cli_heavy_tier_uses_an_openai_compatible_server(tmp_path: Path) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(json.dumps({"id": "a", "query": "q", "context": CONTEXT, "response": "Paris."}) + "\n")
    verdict = '{"score": 0.25, "label": "fail", "explanation": "unsupported"}'
    async with OpenAiServer(Completion(content=verdict)) as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tracejudge.processor.cli", "judge", "--input", str(source), "--output", str(out),
            "--tier", "heavy", "--base-url", server.base_url, "--model", "judge-model",
            stderr=asyncio.subprocess.PIPE)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    (result,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (result["score"], result["label"], result["tier"], result["judge_model"]) == (
        0.25, "fail", "heavy", "judge-model")


async def test_cli_cascade_escalates_only_what_the_local_judge_is_unsure_of(tmp_path: Path) -> None:
    records = [{"id": "sure", "query": "q", "context": CONTEXT, "response": "Paris is the capital of France."},
               {"id": "unsure", "query": "q", "context": CONTEXT, "response": "Paris has 3 million tourists."}]
    sure_score, unsure_score = [v.score for v in await EmbeddedJudge().judge(
        [JudgeInput("faithfulness", r["query"], r["response"], r["context"]) for r in records])]
    assert sure_score is not None and unsure_score is not None and sure_score > unsure_score
    band = (unsure_score - 0.01, (sure_score + unsure_score) / 2)  # holds the second score only
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    verdict = '{"score": 0.25, "label": "fail", "explanation": "3 million is not in the context"}'
    async with OpenAiServer(Completion(content=verdict)) as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tracejudge.processor.cli", "judge", "--input", str(source), "--output", str(out),
            "--tier", "cascade", "--base-url", server.base_url, "--model", "judge-model",
            "--uncertainty-band", str(band[0]), str(band[1]), stderr=asyncio.subprocess.PIPE)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    sure, unsure = [json.loads(line) for line in out.read_text().splitlines()]
    assert (sure["tier"], sure["escalation"]) == ("local", None)
    assert sure["score"] == pytest.approx(sure_score, abs=1e-6)
    assert (unsure["tier"], unsure["score"], unsure["escalation"]) == ("heavy", 0.25, "uncertain")
    assert len(server.requests) == 1
