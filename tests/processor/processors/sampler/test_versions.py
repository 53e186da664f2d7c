"""First sightings of prompt versions shared through a store (both engines): an instance that sees a version an
hour after another does treats it as an hour old, so the new-prompt-version rule decides alike on both."""

from __future__ import annotations

from tests.processor.processors.sampler.test_sampling import llm_span, trace_ids
from tests.support.postgres import OpenDatabase
from tracejudge.processor.processors.sampler.sampling import Sampler, SamplerConfig, SamplingRule
from tracejudge.processor.processors.sampler.versions import MIGRATIONS, WHAT, PromptVersions


def test_a_version_first_seen_by_one_instance_is_as_old_on_another(open_database: OpenDatabase) -> None:
    now = [1_000_000.0]
    config = SamplerConfig(rate=0.0, rules=(SamplingRule("new_prompt", rate=1.0, new_prompt_version_hours=1.0),))
    first, second = (Sampler(config, clock=lambda: now[0],
                             first_seen=PromptVersions(open_database(MIGRATIONS, "sampler", WHAT)).first_seen)
                     for _ in range(2))
    alone = Sampler(config, clock=lambda: now[0])  # keeps its own sightings
    trace = trace_ids(1)[0]
    assert first.decide(llm_span(trace, prompt_version="v2")).stratum == "rule:new_prompt"
    now[0] += 2 * 3600  # two hours later the version reaches the other instances for the first time
    assert second.decide(llm_span(trace, prompt_version="v2")).stratum == "uniform"  # as on the first
    assert first.decide(llm_span(trace, prompt_version="v2")).stratum == "uniform"
    assert alone.decide(llm_span(trace, prompt_version="v2")).stratum == "rule:new_prompt"  # what sharing fixes
