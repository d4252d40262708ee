"""The tagger's heads in the encoder's graph: one onnxruntime call returns the embedding and every
level's tag probabilities.

`make model` ends with `attach` (tagrouter/dev/export_model.py); by hand, on an exported model:

    python -m tagrouter.dev.tagger_graph build/model/model.onnx
    python -m tagrouter.dev.tagger_graph build/model --latency build/vocab-prototype-944337c  # what it costs

After `sentence_embedding` (unit length, [batch, d]) each level of `tagrouter/data/vocabulary/heads.*`
adds MatMul (by its float32 weight, [d, C]), Add (its bias) and Softmax, as the output
`tag_probs_<level>` ([batch, C]). The encoder's own outputs keep their names and order; the heads'
version goes into the model's metadata so the tagger knows which heads the graph carries. Attaching
again replaces the heads.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tagrouter import data
from tagrouter.core.tag_heads import METADATA_KEY, OUTPUT_PREFIX, TaggerHeads

EMBEDDING = "sentence_embedding"
PREFIX = "tagger."  # names of the heads' nodes and initializers


def _strip(graph: onnx.GraphProto) -> None:
    """Remove heads attached before."""
    keep_nodes = [n for n in graph.node if not n.name.startswith(PREFIX)]
    del graph.node[:]
    graph.node.extend(keep_nodes)
    keep_init = [i for i in graph.initializer if not i.name.startswith(PREFIX)]
    del graph.initializer[:]
    graph.initializer.extend(keep_init)
    keep_out = [o for o in graph.output if not o.name.startswith(OUTPUT_PREFIX)]
    del graph.output[:]
    graph.output.extend(keep_out)


def attach_heads(model: onnx.ModelProto, heads: TaggerHeads) -> onnx.ModelProto:
    """`model` with `heads` after its sentence embedding (in place; also returned)."""
    graph = model.graph
    outputs = {o.name: o for o in graph.output}
    if EMBEDDING not in outputs:
        raise ValueError(f"the model has no output {EMBEDDING!r} to attach the tagger's heads to")
    _strip(graph)
    batch = outputs[EMBEDDING].type.tensor_type.shape.dim[0]
    for level, head in heads.heads.items():
        weight = numpy_helper.from_array(np.ascontiguousarray(head.weight.T, dtype=np.float32), f"{PREFIX}{level}.weight")
        bias = numpy_helper.from_array(np.ascontiguousarray(head.bias, dtype=np.float32), f"{PREFIX}{level}.bias")
        graph.initializer.extend([weight, bias])
        scores, logits, probs = f"{PREFIX}{level}.scores", f"{PREFIX}{level}.logits", f"{OUTPUT_PREFIX}{level}"
        graph.node.extend([
            helper.make_node("MatMul", [EMBEDDING, weight.name], [scores], name=f"{PREFIX}{level}.matmul"),
            helper.make_node("Add", [scores, bias.name], [logits], name=f"{PREFIX}{level}.add"),
            helper.make_node("Softmax", [logits], [probs], name=f"{PREFIX}{level}.softmax", axis=-1),
        ])
        out = helper.make_tensor_value_info(probs, TensorProto.FLOAT, [None, len(head.names)])
        out.type.tensor_type.shape.dim[0].CopyFrom(batch)
        graph.output.append(out)
    props = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    model.metadata_props.add(key=METADATA_KEY, value=heads.version)
    onnx.checker.check_model(model)
    return model


def attach(model_path: Path, heads_dir: Path = data.VOCABULARY_DIR) -> bool:
    """Attaches the heads saved in `heads_dir` to the model file; False (model untouched) when there are none."""
    heads = TaggerHeads.load(heads_dir)
    if heads is None:
        return False
    model = onnx.load(str(model_path))
    partial = Path(model_path).with_suffix(".partial")
    onnx.save(attach_heads(model, heads), str(partial))
    os.replace(partial, model_path)  # a reader sees the old graph or the new one, never half of one
    return True


LATENCY_QUERY = "How do I get a refund for a cancelled flight?"


def latency(model_dir: Path, baseline_vocab: Path, runs: int = 300) -> dict:
    """p50 ms of TagModel.tag on one short query: with the heads in the graph, against the same encoder
    without them and the prototype tagger of `baseline_vocab` (one matrix product after the encoder).
    Alternated call by call in one process, so the ratio holds on a loaded machine."""
    import shutil
    import tempfile
    import time

    from tagrouter.core.tag_model import TagModel

    with tempfile.TemporaryDirectory() as tmp:
        model = onnx.load(str(Path(model_dir) / "model.onnx"))
        _strip(model.graph)
        onnx.save(model, str(Path(tmp) / "model.onnx"))
        shutil.copy(Path(model_dir) / "tokenizer.json", Path(tmp) / "tokenizer.json")
        taggers = {"heads in the graph": TagModel.load(model_dir, use_heads=True),
                   "encoder, then prototypes": TagModel.load(tmp, baseline_vocab, use_heads=False)}
        times: dict[str, list[float]] = {name: [] for name in taggers}
        for i in range(runs + 20):
            for name, tagger in taggers.items():
                start = time.perf_counter()
                tagger.tag([LATENCY_QUERY])
                if i >= 20:  # warm-up
                    times[name].append(time.perf_counter() - start)
    p50 = {name: float(np.median(t)) * 1e3 for name, t in times.items()}
    return p50 | {"ratio": p50["heads in the graph"] / p50["encoder, then prototypes"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model.onnx to attach to, or with --latency the model folder")
    parser.add_argument("--heads", type=Path, default=data.VOCABULARY_DIR, help="folder with heads.npz and heads.json")
    parser.add_argument("--latency", type=Path, metavar="BASELINE_VOCAB",
                        help="instead: time tagging with the heads in the graph against the prototype tagger")
    args = parser.parse_args()
    if args.latency:
        print(latency(args.model, args.latency))
    else:
        print(f"{args.model}: heads attached" if attach(args.model, args.heads) else f"no heads in {args.heads}")


if __name__ == "__main__":
    main()
