"""`tracejudge series`, `tracejudge alerts`, `tracejudge calibration` and `tracejudge replay`: read the statistics
of a config's judge stages from their stores (judge_queue.stats.db beside the judge queue), while the processor runs
or after it stopped."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from tracejudge.processor.extensions.file_storage import FileStorage, FileStorageConfig
from tracejudge.processor.processors.judge_queue.stage import JudgeQueueStageConfig, stats_path
from tracejudge.processor.service.config import Config
from tracejudge.stats.calibration import calibrate
from tracejudge.stats.config import StatsConfig
from tracejudge.stats.replay import recover, replay
from tracejudge.stats.store import SqliteStore


def stats_stores(config: Config) -> Iterator[tuple[str, Path, StatsConfig]]:
    """(stage name, stats database, stats settings) of every judge stage with statistics on."""
    for name, settings in config.processors.items():
        if not isinstance(settings, JudgeQueueStageConfig) or not settings.stats.enabled:
            continue
        storage = config.extensions.get(settings.storage)
        if isinstance(storage, FileStorageConfig):
            yield name, stats_path(FileStorage(storage).path_for(name)), settings.stats


def _opened(config: Config) -> Iterator[tuple[str, SqliteStore, StatsConfig]]:
    """Each judge stage's store that exists, closed after use."""
    for name, path, settings in stats_stores(config):
        if not path.exists():
            continue
        store = SqliteStore(path)
        try:
            yield name, store, settings
        finally:
            store.close()


def series(config: Config, as_json: bool, out: IO[str]) -> int:
    found = 0
    for name, store, settings in _opened(config):
        monitor, _ = recover(store, settings)
        for key in sorted(monitor.series):
            found += 1
            status = {"stage": name, **monitor.series[key].status()}
            print(json.dumps(status, sort_keys=True) if as_json else _table(status), file=out)
    if not found:
        print("no series yet: nothing has been judged (or statistics are off); see `tracejudge explain`", file=out)
    return 0


def alerts(config: Config, trace_id: str, as_json: bool, out: IO[str]) -> int:
    count = 0
    for _, store, _ in _opened(config):
        for alert in store.alerts(trace_id):
            count += 1
            if as_json:
                print(alert.to_json(), file=out)
                continue
            ci = (f", 95% CI {alert.ci_low:+.3f}..{alert.ci_high:+.3f}"
                  if alert.ci_low is not None and alert.ci_high is not None else "")
            print(f"[{alert.cause}] {alert.series} via {alert.detector}: {alert.summary}{ci}", file=out)
            for trace, span in alert.examples:
                print(f"    example: trace {trace} span {span}", file=out)
    if not count and not as_json:
        print("no alerts", file=out)
    return 0


def calibration(config: Config, as_json: bool, out: IO[str]) -> int:
    """Per metric and judge version: AUROC of the score for user outcomes, agreement with reviewers, warnings."""
    found = 0
    for name, store, _ in _opened(config):
        for result in calibrate(store):
            found += 1
            document = {"stage": name, **dataclasses.asdict(result), "warning": result.warning}
            if as_json:
                print(json.dumps(document, sort_keys=True), file=out)
                continue
            print(f"{result.metric} (judge version {result.judge_version}, stage {name})", file=out)
            outcome = result.outcome
            if outcome is not None:
                print(f"  predicts user outcomes: AUROC {outcome.value:.3f} (95% CI {outcome.ci_low:.3f}-"
                      f"{outcome.ci_high:.3f}; {result.n_unhappy} unhappy vs {result.n_control} {result.control})",
                      file=out)
            if result.agreement is not None:
                kappa = "-" if result.kappa is None else f"{result.kappa:.2f}"
                print(f"  agrees with reviewers: {result.agreement:.1%} of {result.n_labels} labels (kappa {kappa})",
                      file=out)
            if result.warning:
                print(f"  WARNING: {result.warning}", file=out)
    if not found:
        print("nothing judged yet: calibration needs judged traces with feedback", file=out)
    return 0


def replay_alerts(config: Config, out: IO[str]) -> int:
    """Prints the replayed alerts as JSON lines; exit 1 if they differ from the stored ones."""
    differ = False
    for name, store, settings in _opened(config):
        replayed = [alert.to_json() for alert in replay(store, settings)]
        stored = [alert.to_json() for alert in store.alerts()]
        for line in replayed:
            print(line, file=out)
        if replayed != stored:
            differ = True
            print(f"{name}: replay gave {len(replayed)} alerts, the store holds {len(stored)} that differ "
                  "(settings changed since they were raised?)", file=out)
    return 1 if differ else 0


def _table(status: dict[str, Any]) -> str:
    def number(x: Any) -> str:
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"

    lines = [f"{status['series']}  (stage {status['stage']})"]
    ci = status["ci95 (weighted)"]
    lines.append(f"  score {number(status['mean_score (weighted, all judged)'])} "
                 f"[{number(ci[0])}, {number(ci[1])}] weighted over n={status['n']}; "
                 f"uniform stratum {number(status['mean_score (uniform stratum)'])} n={status['n_uniform']}; "
                 f"pass rate {number(status['pass_rate (weighted)'])}")
    lines.append(f"  CUSUM {number(status['cusum'])} / h={status['cusum_limit']:g} (reference: "
                 f"{status['cusum_reference']}); variant {status['variant']}"
                 + (f" (was {status['previous_variant']})" if status["previous_variant"] else ""))
    for detector, result in sorted(status["comparisons"].items()):
        lines.append(f"  {detector}: {_comparison(result)}")
    return "\n".join(lines)


def _comparison(result: dict[str, Any]) -> str:
    welch = result.get("welch")
    if welch:
        verdict = "REGRESSED" if welch["regressed"] else "no significant drop"
        return (f"{verdict}: {welch['baseline']:.3f} -> {welch['current']:.3f} ({welch['effect']:+.3f}, 95% CI "
                f"{welch['ci_low']:+.3f}..{welch['ci_high']:+.3f}, p={welch['p_value']:.2g}, n "
                f"{welch['n_baseline']} vs {welch['n_current']}); minimum detectable drop "
                f"{welch['minimum_detectable_drop']:.3f}, n per arm for the configured drop "
                f"{welch['n_needed_per_arm']}")
    if "verdict" in result:
        return f"canary {result['verdict']}"
    if "shifted_mean" in result:
        when = datetime.fromtimestamp(result["at_unix_nano"] / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return (f"last alarm {result['direction']} at {when} UTC: mean about {result['shifted_mean']:.3f} over "
                f"{result['n']} scores against a reference of {result['reference_mean']:.3f} "
                f"(sd {result['reference_sd']:.3f}, {result['reference']})")
    return json.dumps(result, sort_keys=True)
