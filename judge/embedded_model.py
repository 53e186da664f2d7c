"""The embedded judge's model files and how inputs become numbers: tokenizer, int8 word-embedding table and two ONNX
graphs (a cross-encoder for faithfulness, the original bi-encoder for relevancy embeddings). Used by serving and,
for the exact same encoding, by training.

Files in a model directory (`judge/model` ships one):
- `model.json`      settings, calibration and the sha256 of every other file
- `tokenizer.json`  the all-MiniLM-L6-v2 WordPiece tokenizer
- `embeddings.npz`  word embeddings, int8 per row with a float32 scale per row (shared by both graphs)
- `cross.onnx`      (inputs_embeds, attention_mask, token_type_ids) -> logit that the response is unsupported
- `bi.onnx`         (inputs_embeds, attention_mask) -> L2-normalised mean-pooled sentence embedding
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tracejudge.processor.component.errors import ConfigError

from .combiners import Logistic, TreeEnsemble, combiner

DEFAULT_DIR = Path(__file__).parent / "model"
FILES = ("tokenizer.json", "embeddings.npz", "cross.onnx", "bi.onnx")
PAD_ID = 0

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Batch:
    input_ids: IntArray
    attention_mask: IntArray
    token_type_ids: IntArray


class Tokens:
    """all-MiniLM-L6-v2's tokenizer: pairs truncated longest-first to `max_tokens`, single texts to
    `text_max_tokens`; a batch is padded to its longest member."""

    def __init__(self, path: Path, max_tokens: int, text_max_tokens: int) -> None:
        from tokenizers import Tokenizer

        # tokenizer.json as shipped pads every input to 128 tokens: padding is ours to do (to the batch's longest)
        self._tokenizer = Tokenizer.from_file(str(path))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens, strategy="longest_first")
        self._text_tokenizer = Tokenizer.from_file(str(path))
        self._text_tokenizer.no_padding()
        self._text_tokenizer.enable_truncation(max_length=text_max_tokens)

    def pairs(self, pairs: Sequence[tuple[str, str]]) -> Batch:
        return self._batch(self._tokenizer.encode_batch(list(pairs)))

    def texts(self, texts: Sequence[str]) -> Batch:
        return self._batch(self._text_tokenizer.encode_batch(list(texts)))

    def each_pair(self, pairs: Sequence[tuple[str, str]]) -> list[Batch]:
        return [self._batch([e]) for e in self._tokenizer.encode_batch(list(pairs))]

    def each_text(self, texts: Sequence[str]) -> list[Batch]:
        return [self._batch([e]) for e in self._text_tokenizer.encode_batch(list(texts))]

    @staticmethod
    def _batch(encodings: list[Any]) -> Batch:
        width = max(len(e.ids) for e in encodings)
        shape = (len(encodings), width)
        ids, mask, types = np.full(shape, PAD_ID, np.int64), np.zeros(shape, np.int64), np.zeros(shape, np.int64)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n], mask[row, :n], types[row, :n] = e.ids, e.attention_mask, e.type_ids
        return Batch(ids, mask, types)


def quantize_rows(table: FloatArray) -> tuple[npt.NDArray[np.int8], FloatArray]:
    """Symmetric int8 per row: table ≈ q * scale[:, None]."""
    scale = np.maximum(np.abs(table).max(axis=1), 1e-12).astype(np.float32) / 127.0
    q = np.clip(np.rint(table / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class Embedder:
    """Token ids to input embeddings through the int8 table (dequantised row by row)."""

    def __init__(self, q: npt.NDArray[np.int8], scale: FloatArray) -> None:
        self.q, self.scale = q, scale

    def __call__(self, ids: IntArray) -> FloatArray:
        vectors: FloatArray = self.q[ids].astype(np.float32) * self.scale[ids][..., None]
        return vectors


# Inputs go through the graphs one at a time. Int8 dynamic quantization scales activations per tensor, so in a
# padded batch one input's score would depend on its neighbours (by ~0.01); alone, a text always gets the same
# score. On 2 cores batching gains nothing (measured: bench.judge_quality), and there is no padding to compute.

class CrossGraph:
    """`cross.onnx`: one logit per (context, response) pair, high = the response is not supported by the context.
    Training scores its held-out records through this class too, so the calibration sees what serving computes."""

    def __init__(self, path: Path, tokens: Tokens, embed: Embedder, threads: int) -> None:
        self._session, self._tokens, self._embed = session(path, threads), tokens, embed

    def logits(self, pairs: Sequence[tuple[str, str]]) -> FloatArray:
        out = np.zeros(len(pairs), dtype=np.float32)
        for i, batch in enumerate(self._tokens.each_pair(pairs)):
            (logit,) = self._session.run(["logit"], {"inputs_embeds": self._embed(batch.input_ids),
                                                     "attention_mask": batch.attention_mask,
                                                     "token_type_ids": batch.token_type_ids})
            out[i] = float(np.asarray(logit).reshape(-1)[0])
        return out


class EmbeddedModel:
    """The loaded model directory. `faithfulness_logits` and `embeddings` are synchronous CPU work (run them in an
    executor); ONNX Runtime is limited to `threads` intra-op threads."""

    def __init__(self, directory: Path = DEFAULT_DIR, threads: int = 2) -> None:
        settings_path = directory / "model.json"
        try:
            self.settings: dict[str, Any] = json.loads(settings_path.read_text())
        except FileNotFoundError as e:
            raise ConfigError(f"embedded judge model: no {settings_path} (train one with `make train-judge`)") from e
        for name in FILES:
            if sha256(directory / name) != self.settings["sha256"][name]:
                raise ConfigError(f"embedded judge model: {directory / name} does not match the sha256 in "
                                  f"{settings_path} (a partial copy, or a Git LFS pointer?)")
        with np.load(directory / "embeddings.npz") as table:
            self._embed = Embedder(table["q"], table["scale"])
        self.tokens = Tokens(directory / "tokenizer.json", int(self.settings["max_tokens"]),
                             int(self.settings["text_max_tokens"]))
        self._cross = CrossGraph(directory / "cross.onnx", self.tokens, self._embed, threads)
        self._bi = session(directory / "bi.onnx", threads)
        self.name = str(self.settings["name"])
        from .adaptation import Head
        from .embedded_signals import INPUTS

        try:  # how the faithfulness signals become the log-odds of "unsupported"
            self.calibration: TreeEnsemble | Logistic = combiner(self.settings["calibration"], INPUTS["faithfulness"])
        except (KeyError, ValueError) as e:
            raise ConfigError(f"embedded judge model: {settings_path}: calibration: {e}") from e
        relevancy = self.settings["relevancy"]
        try:  # the relevancy head over its signals; the first models' form: a logistic over the cosine alone
            self.relevancy = (Head.from_dict(relevancy) if "kind" in relevancy else
                              Head("head", (float(relevancy["weight"]),), float(relevancy["bias"]), (0.0,), (1.0,),
                                   0.0, 0))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"embedded judge model: {settings_path}: relevancy: {e}") from e

    def faithfulness_logits(self, pairs: Sequence[tuple[str, str]]) -> FloatArray:
        """One logit per (context, response) pair: high = the response is not supported by the context."""
        return self._cross.logits(pairs)

    def embeddings(self, texts: Sequence[str]) -> FloatArray:
        """L2-normalised sentence embeddings, one row per text."""
        rows = [self._bi.run(["embedding"], {"inputs_embeds": self._embed(batch.input_ids),
                                             "attention_mask": batch.attention_mask})[0]
                for batch in self.tokens.each_text(texts)]
        return np.asarray(np.concatenate(rows), dtype=np.float32).reshape(len(texts), -1)


def model_version(directory: Path = DEFAULT_DIR) -> str:
    """A model directory's version (`version_of`), from its model.json alone."""
    try:
        settings = json.loads((directory / "model.json").read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"embedded judge model: no {directory / 'model.json'}") from e
    return version_of(settings)


def version_of(settings: dict[str, Any]) -> str:
    """"<name>@<12 hex>" of every model file's sha256 with the calibration and relevancy settings: a retrained or a
    recalibrated model is another judge."""
    document = json.dumps({"files": settings["sha256"], "calibration": settings["calibration"],
                           "relevancy": settings["relevancy"]}, sort_keys=True)
    return f"{settings['name']}@{hashlib.sha256(document.encode()).hexdigest()[:12]}"


def loaded(directory: Path = DEFAULT_DIR, threads: int = 2) -> EmbeddedModel:
    """One EmbeddedModel per directory and thread count in the process: the judge and the drift projection share
    it (ONNX Runtime sessions are safe to run from several threads), however they name it."""
    return _loaded(Path(directory).resolve(), threads)


@functools.lru_cache(maxsize=4)
def _loaded(directory: Path, threads: int) -> EmbeddedModel:
    return EmbeddedModel(directory, threads)
