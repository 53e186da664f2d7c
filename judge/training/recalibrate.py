"""Refit the shipped model's calibration over more inputs without retraining (numpy only): the "learned combination
with the lexical features" lever of the model card.

Needs what `make train-judge TRAIN_ARGS='--fold-graphs DIR'` keeps: each fold model's int8 graph and the ids of the
training records it never saw. Every such record is scored by its fold's graph (what serving computes), the
calibration inputs are computed beside the logit, and a logistic regression over them is fitted with the training
recipe's per-file weights — exactly how `train` fits the shipped calibration, with `--inputs` choosing the columns.
It prints the cross-fitted AUROC per file for the shipped inputs and the chosen ones, and writes a model directory
(the model's files, a new model.json) that `bench.judge_quality --model DIR` scores. `--relevancy-inputs 2` also
refits relevancy over the cosine and the share of the query's content words the response repeats, on the training
files' (query, own response) against (query, another record's response) pairs, as `train` samples them.

    python -m tracejudge.judge.training.recalibrate --folds build/judge-repro/folds --out build/lever-pairs
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..adaptation import INPUTS, Item, signals
from ..embedded_model import DEFAULT_DIR, FILES, EmbeddedModel
from ..embedded_text import window
from ..quality import auroc
from .calibrate import cross_fitted, fit_logistic
from .data import LabelledRecord, read_records, relevancy_pairs, source_weights

ROOT = Path(__file__).resolve().parents[2]


def held_out(folds: Path, data: Path) -> list[tuple[Path, list[LabelledRecord]]]:
    """(fold graph, the training records it never saw) per fold."""
    by_id = {r.id: r for path in sorted(data.glob("*.jsonl")) for r in read_records(path)}
    return [(graph, [by_id[json.loads(line)["id"]] for line in graph.with_suffix(".jsonl").read_text().splitlines()])
            for graph in sorted(folds.glob("fold*.onnx"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=Path, help="the --fold-graphs directory of a training run (without it the "
                                                   "faithfulness calibration stays as it is)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "judge-train")
    parser.add_argument("--model", type=Path, default=DEFAULT_DIR, help="the final model the folds belong to")
    parser.add_argument("--inputs", default=",".join(INPUTS["faithfulness"]),
                        help="calibration inputs, a prefix of: " + ", ".join(INPUTS["faithfulness"]))
    parser.add_argument("--relevancy-inputs", type=int, choices=(1, 2), default=1,
                        help="how many of " + ", ".join(INPUTS["relevancy"]) + " relevancy reads (1: as shipped)")
    parser.add_argument("--seed", type=int, default=20261130, help="the training run's, for the relevancy pairs")
    parser.add_argument("--balance", type=float, default=0.5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    names = args.inputs.split(",")
    if names != list(INPUTS["faithfulness"][:len(names)]):
        parser.error(f"--inputs: a prefix of {','.join(INPUTS['faithfulness'])} (serving reads the first columns)")
    model = EmbeddedModel(args.model)
    settings = dict(model.settings)
    settings["report"] = dict(settings.get("report", {}))
    if args.folds:
        settings["calibration"], settings["report"]["recalibrated (out-of-fold, cross-fitted)"] = faithfulness(
            model, held_out(args.folds, args.data), names, args.balance)
    if args.relevancy_inputs > 1:
        settings["relevancy"], settings["report"]["relevancy recalibrated"] = relevancy(model, args.data, args.seed,
                                                                                       args.relevancy_inputs)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(args.model / name, args.out / name)
    (args.out / "model.json").write_text(json.dumps(settings, indent=1) + "\n")
    print(f"{args.out}: model.json with faithfulness over {settings['calibration']['inputs']}, relevancy over "
          f"{settings['relevancy'].get('inputs', ['cosine'])}")


def faithfulness(model: EmbeddedModel, folds: list[tuple[Path, list[LabelledRecord]]], names: list[str],
                 balance: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The calibration over `names`, fitted on the fold graphs' held-out records; (settings, report: cross-fitted
    AUROC per file with the model's current inputs and with `names`)."""
    rows, records = [], []
    for graph, held in folds:
        settings = model.settings
        logits = model.cross_graph(graph).logits([
            window(r.context, r.response, int(settings["window_words"]), int(settings["min_context_words"]))
            for r in held])
        items = [Item(r.query, r.context, r.response) for r in held]
        rows.append(signals(model, "faithfulness", items, embeddings=False, logits=logits))
        records += held
        print(f"{graph.name}: {len(held)} held-out records scored", flush=True)
    x, y = np.vstack(rows), np.array([r.label for r in records], dtype=np.float64)
    weight = source_weights(records, balance)
    groups = [f"{r.source}/{r.group}" for r in records]
    report = {}
    for label, n in (("current inputs", len(model.settings["calibration"]["weights"])), ("chosen inputs", len(names))):
        good = 1 - cross_fitted(x, y, groups, list(range(n)), weight)
        per_file = {source: round(auroc(good[idx].tolist(), y[idx].astype(int).tolist()), 4)
                    for source in sorted({r.source for r in records})
                    for idx in [np.array([r.source == source for r in records])]}
        report[label] = {"all": round(auroc(good.tolist(), y.astype(int).tolist()), 4), **per_file}
        print(f"cross-fitted AUROC, {label} {list(INPUTS['faithfulness'][:n])}: {report[label]}")
    weights, bias = fit_logistic(x[:, :len(names)], y, sample_weight=weight)
    return {"inputs": names, "weights": [float(w) for w in weights], "bias": bias}, report


def relevancy(model: EmbeddedModel, data: Path, seed: int, inputs: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Relevancy refitted over the first `inputs` of INPUTS["relevancy"] on the training files' pairs; (settings,
    report: cross-fitted AUROC with the cosine alone and with the chosen inputs)."""
    records = [r for path in sorted(data.glob("*.jsonl")) for r in read_records(path)]
    queries, responses, relevant = relevancy_pairs(records, seed)
    x = signals(model, "relevancy", [Item(q, "", r) for q, r in zip(queries, responses, strict=True)],
                embeddings=False)
    y = 1.0 - np.array(relevant)  # cross_fitted's convention: P(bad)
    groups = list(queries)  # a query's two pairs on one side
    ones = np.ones(len(y))
    report = {}
    for n in sorted({1, inputs}):
        good = 1 - cross_fitted(x, y, groups, list(range(n)), ones)
        report[", ".join(INPUTS["relevancy"][:n])] = round(auroc(good.tolist(), y.astype(int).tolist()), 4)
    weights, bias = fit_logistic(x[:, :inputs], y)
    print(f"relevancy, cross-fitted AUROC on {len(y)} training pairs: {report}")
    # fitted on P(off-topic): negated for P(relevant)
    return ({"inputs": list(INPUTS["relevancy"][:inputs]), "weights": [-float(w) for w in weights], "bias": -bias},
            {"pairs": len(y), "cross-fitted AUROC": report})


if __name__ == "__main__":
    main()
