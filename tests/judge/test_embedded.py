"""The shipped embedded judge: the committed model matches its card and loads offline; verdicts are honest."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tracejudge.judge.embedded import EmbeddedJudge
from tracejudge.judge.embedded_model import DEFAULT_DIR, FILES, EmbeddedModel, sha256
from tracejudge.judge.verdict import JudgeInput
from tracejudge.processor.component.errors import ConfigError

CONTEXT = ("The Eiffel Tower is a wrought-iron lattice tower in Paris, France. It is named after the engineer "
           "Gustave Eiffel, whose company designed and built the tower from 1887 to 1889.")
SUPPORTED = JudgeInput("faithfulness", "Who built the Eiffel Tower?",
                       "Gustave Eiffel's company designed and built the Eiffel Tower.", CONTEXT)
INVENTED = JudgeInput("faithfulness", "Who built the Eiffel Tower?",
                      "It was built by Napoleon Bonaparte in 1812 as a radio mast for Lyon.", CONTEXT)


@pytest.fixture(scope="module")
def judge() -> EmbeddedJudge:
    return EmbeddedJudge()


def test_the_committed_model_matches_its_card_and_fits_the_size_budget() -> None:
    settings = json.loads((DEFAULT_DIR / "model.json").read_text())
    card = (DEFAULT_DIR / "README.md").read_text()
    for name in FILES:
        assert sha256(DEFAULT_DIR / name) == settings["sha256"][name], name
        assert settings["sha256"][name] in card, f"the model card does not state {name}'s sha256"
    assert sum((DEFAULT_DIR / name).stat().st_size for name in FILES) <= 30 * 1024 * 1024


def test_the_model_loads_with_no_network_and_no_torch(tmp_path: Path) -> None:
    # a fresh interpreter that cannot import torch or transformers, and with the hub switched off
    script = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
              "from tracejudge.judge.embedded_model import EmbeddedModel\n"
              "m = EmbeddedModel(); print(m.faithfulness_logits([('Paris is in France.', 'Paris is in France.')]))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False,
                            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "NO_PROXY": "*",
                                 "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"})
    assert result.returncode == 0, result.stderr


def test_a_damaged_model_file_is_refused_by_name(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(DEFAULT_DIR, copy)
    data = bytearray((copy / "cross.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "cross.onnx").write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"cross\.onnx does not match"):
        EmbeddedModel(copy)
    with pytest.raises(ConfigError, match=r"no .*model\.json"):
        EmbeddedModel(tmp_path / "nowhere")


async def test_supported_answers_score_higher_than_invented_ones(judge: EmbeddedJudge) -> None:
    supported, invented = await judge.judge([SUPPORTED, INVENTED])
    assert supported.score is not None and invented.score is not None
    assert supported.score > invented.score
    assert invented.label == "fail" and "1812" in invented.explanation and "Napoleon" in invented.explanation
    for v in (supported, invented):
        assert v.tier == "local" and v.judge_model == judge.model and v.judge_prompt_version == judge.prompt_version
        assert 0.0 <= v.confidence <= 1.0 and v.latency_s > 0


async def test_context_free_faithfulness_is_not_judgeable_never_a_guess(judge: EmbeddedJudge) -> None:
    no_context, empty, no_query, other = await judge.judge([
        JudgeInput("faithfulness", "Who built it?", "Gustave Eiffel.", "  "),
        JudgeInput("faithfulness", "Who built it?", "", CONTEXT),
        JudgeInput("relevancy", "", "Gustave Eiffel."),
        JudgeInput("toxicity", "q", "r", CONTEXT),
    ])
    assert (no_context.score, no_context.error_type) == (None, "no_context")
    assert (empty.score, empty.error_type) == (None, "no_content")
    assert (no_query.score, no_query.error_type) == (None, "no_content")
    assert (other.score, other.error_type) == (None, "unsupported_metric")


async def test_relevancy_prefers_the_answer_to_the_question_asked(judge: EmbeddedJudge) -> None:
    on_topic, off_topic = await judge.judge([
        JudgeInput("relevancy", "How tall is the Eiffel Tower?", "The Eiffel Tower is 330 metres tall."),
        JudgeInput("relevancy", "How tall is the Eiffel Tower?", "Bananas are rich in potassium."),
    ])
    assert on_topic.score is not None and off_topic.score is not None
    assert on_topic.score > off_topic.score and off_topic.label == "fail"
    # issue 21's example: the cosine-only calibration passed it at 0.59
    answer, made_up = judge.judge_now([
        JudgeInput("relevancy", "Can I cancel a reservation?", "Yes: up to 24 hours before, for a full refund."),
        JudgeInput("relevancy", "Can I cancel a reservation?", "We offer helicopter delivery to 190 countries.")])
    assert answer.label == "pass" and made_up.label == "fail"


def test_a_model_with_the_first_cosine_only_relevancy_calibration_still_loads(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(DEFAULT_DIR, copy)
    settings = json.loads((copy / "model.json").read_text())
    settings["relevancy"] = {"weight": 5.31, "bias": -0.92}
    (copy / "model.json").write_text(json.dumps(settings))
    judge = EmbeddedJudge(copy)
    (verdict,) = judge.judge_now([JudgeInput("relevancy", "How tall is it?", "It is 330 metres tall.")])
    question, answer = EmbeddedModel(copy).embeddings(["How tall is it?", "It is 330 metres tall."])
    assert verdict.score == pytest.approx(1 / (1 + math.exp(-(5.31 * float(question @ answer) - 0.92))), abs=1e-6)
    settings["relevancy"] = {"kind": "adapter", "weights": [1.0]}
    (copy / "model.json").write_text(json.dumps(settings))
    with pytest.raises(ConfigError, match=r"model\.json: relevancy: 'bias'"):
        EmbeddedModel(copy)


async def test_scores_do_not_depend_on_what_else_is_in_the_batch(judge: EmbeddedJudge) -> None:
    long_context = " ".join([CONTEXT] * 20)  # beyond the window: sentences are selected
    items = [SUPPORTED, INVENTED, JudgeInput("faithfulness", "q", "Eiffel designed it.", long_context),
             JudgeInput("relevancy", "Who built the tower?", "Gustave Eiffel's company.")]
    together = await judge.judge(items)
    alone = [(await judge.judge([item]))[0] for item in items]
    for a, b in zip(together, alone, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-4)


async def test_large_inputs_are_judged_in_bounded_batches(judge: EmbeddedJudge) -> None:
    verdicts = await judge.judge([SUPPORTED] * 70)  # three model calls of at most 32
    assert len(verdicts) == 70 and len({round(v.score or 0, 5) for v in verdicts}) == 1


def test_short_inputs_are_not_padded_to_the_tokenizer_files_fixed_length() -> None:
    # the shipped tokenizer.json pads to 128: computing on padding would cost as much as text
    model = EmbeddedModel()
    (text,) = model.tokens.each_text(["How tall is it?"])
    (pair,) = model.tokens.each_pair([("It is 330 metres tall.", "330 metres.")])
    assert text.input_ids.shape == (1, 7) and pair.input_ids.shape[1] < 20
    assert model.tokens.pairs([("a b c", "d"), ("a", "b")]).input_ids.shape == (2, 7)  # to the longest member
