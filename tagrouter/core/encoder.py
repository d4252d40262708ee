"""The sentence encoder: all-MiniLM-L6-v2, int8 ONNX, run with onnxruntime and tokenizers.

No torch here: the model is exported once by `make model` (tagrouter/dev/export_model.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from tagrouter.core.tag_heads import FEATURES, METADATA_KEY, OUTPUT_PREFIX

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
# all-MiniLM-L6-v2 was trained on 256-token windows (sentence_bert_config.json): longer
# queries are truncated to their first 256 tokens, which carry the task and topic.
MAX_TOKENS = 256
# An [UNK] stands for a whole word the vocabulary cannot spell (a run of 100,000 `a`s, a string
# of emoji): priced as one token it would make a megabyte of text nearly free. It counts as one
# token per UNK_BYTES_PER_TOKEN bytes of UTF-8 it covers instead (an emoji is one, `aaaa` is one).
UNK_BYTES_PER_TOKEN = 4


@dataclass(frozen=True)
class Encoded:
    """Embeddings of a batch of texts, with their untruncated token counts."""

    embeddings: np.ndarray  # float32 [n, dim], unit length
    token_counts: list[int]
    truncated: list[bool]
    tokenise_s: float = 0.0  # where the call's time went (the tagger's phase metrics)
    run_s: float = 0.0
    # level -> [n, C] the tagger heads' probabilities, when the graph carries them (tagrouter.dev.tagger_graph)
    tag_probs: dict[str, np.ndarray] | None = None
    features: np.ndarray | None = None  # [n, width] the heads' input, when asked for (training, older graphs)


class Encoder:
    """Embeds texts; one onnxruntime call per batch, padded to the batch's longest text."""

    def __init__(self, model_dir: Path, intra_op_threads: int = 1):
        model_path, tokenizer_path = Path(model_dir) / MODEL_FILE, Path(model_dir) / TOKENIZER_FILE
        for path in (model_path, tokenizer_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing: run `make model` to export the encoder")
        self.model_path = model_path
        self.session = self._session(intra_op_threads)
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()  # count every token for the cost estimate, cut below
        self.sep_id = self.tokenizer.token_to_id("[SEP]")
        self.unk_id = self.tokenizer.token_to_id("[UNK]")
        self.dim = int(self.session.get_outputs()[1].shape[-1])
        # The tagger's heads, run in the same call when the graph has them (their version in its metadata).
        self.head_outputs = [o.name for o in self.session.get_outputs() if o.name.startswith(OUTPUT_PREFIX)]
        self.heads_version = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        # the heads' input features: their width, 0 for a graph exported before them
        self.feature_width = next((int(o.shape[-1]) for o in self.session.get_outputs() if o.name == FEATURES), 0)

    def _session(self, threads: int) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 1:
            # The pool's threads spin between the run's parallel steps (a sleeping thread woken for
            # each of a short query's steps costs more than the second core gives) and stop when the
            # run returns: a thread still spinning then would take the core the services need next.
            # Measured in docs/BENCHMARKS.md ("the lone query's second thread spins during its run"):
            # no spinning at all made the second thread worth little on an idle machine.
            options.add_session_config_entry("session.force_spinning_stop", "1")
        return ort.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"])

    @property
    def threads(self) -> int:
        return self.session.get_session_options().intra_op_num_threads

    def count_tokens(self, text: str) -> int:
        return self._count(text, self.tokenizer.encode(text))

    def _count(self, text: str, encoding) -> int:
        """Tokens for pricing: each [UNK] counts by the bytes it covers (see UNK_BYTES_PER_TOKEN)."""
        ids = encoding.ids
        count = len(ids)
        if self.unk_id is None or self.unk_id not in ids:
            return count
        offsets = encoding.offsets
        for i, token in enumerate(ids):
            if token == self.unk_id:
                start, end = offsets[i]
                span = len(text[start:end].encode("utf-8", "surrogatepass"))
                count += max(1, -(-span // UNK_BYTES_PER_TOKEN)) - 1
        return count

    def encode(self, texts: list[str], heads: bool = True, features: bool = False) -> Encoded:
        """Embeds `texts` (non-empty list) in one session call. heads: also fetch the graph's tag
        probabilities (when it has heads); a tagger that does not use them asks for the embedding
        alone, so onnxruntime skips the heads. features: also the heads' input features."""
        if features and not self.feature_width:
            raise ValueError(f"{self.model_path} has no output {FEATURES!r}: run `make model` to export it")
        started = time.perf_counter()
        encodings = self.tokenizer.encode_batch(texts)
        lengths = [len(e.ids) for e in encodings]
        counts = [self._count(t, e) for t, e in zip(texts, encodings)]
        width = min(max(lengths), MAX_TOKENS)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            tokens = encoding.ids
            if len(tokens) > MAX_TOKENS:
                tokens = tokens[: MAX_TOKENS - 1] + [self.sep_id]
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        tokenised = time.perf_counter()
        heads_asked = self.head_outputs if heads else []
        extra = [FEATURES] if features else []
        embeddings, *rest = self.session.run(["sentence_embedding", *extra, *heads_asked],
                                             {"input_ids": ids, "attention_mask": mask})
        pooled = rest.pop(0) if features else None
        probs = rest
        return Encoded(
            embeddings=np.ascontiguousarray(embeddings, dtype=np.float32),
            token_counts=counts,
            truncated=[n > MAX_TOKENS for n in lengths],
            tokenise_s=tokenised - started,
            run_s=time.perf_counter() - tokenised,
            tag_probs={name[len(OUTPUT_PREFIX):]: p for name, p in zip(heads_asked, probs)} if probs else None,
            features=None if pooled is None else np.ascontiguousarray(pooled, dtype=np.float32),
        )

    def embed(self, texts: list[str], batch_size: int = 64, progress=None) -> np.ndarray:
        """Embeds many texts, batching those of similar length together (offline use).

        progress, when given, is called with the number of texts done after each batch.
        """
        return self.embed_with_features(texts, batch_size, progress, features=False)[0]

    def embed_with_features(self, texts: list[str], batch_size: int = 64, progress=None,
                            features: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """`embed`, with the heads' input features beside the embeddings (None when not asked for)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        pooled = None
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            encoded = self.encode([texts[i] for i in chunk], heads=False, features=features)
            out[chunk] = encoded.embeddings
            if features:
                if pooled is None:
                    pooled = np.zeros((len(texts), encoded.features.shape[1]), dtype=np.float32)
                pooled[chunk] = encoded.features
            if progress is not None:
                progress(len(chunk))
        return out, pooled
