"""The tagger's features and heads in the encoder's graph: one onnxruntime call returns the
embedding and every level's tag probabilities.

`make model` ends with `attach` (tagrouter/dev/export_model.py); by hand, on an exported model:

    python -m tagrouter.dev.tagger_graph build/model/model.onnx
    python -m tagrouter.dev.tagger_graph build/model --latency build/vocab-prototype-944337c  # what it costs

The features (`tagger_features`, [batch, 6 d], see `tagrouter.core.tag_heads`): each of the six
layers' outputs mean-pooled over the attention mask and scaled to unit length, as the sentence
embedding is (the last of them is `sentence_embedding` itself), concatenated and divided by
sqrt(6). After them each level of `tagrouter/data/vocabulary/heads.*` adds MatMul (by its float32
weight, [6 d, C]), Add (its bias) and Softmax, as the output `tag_probs_<level>` ([batch, C]). The
encoder's own outputs keep their names and order; the heads' version goes into the model's
metadata so the tagger knows which heads the graph carries. Attaching again replaces both; heads
trained on other features are left out (with a warning: retrain them with `make tagger-heads`),
the features never are, since training reads them from the graph.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tagrouter import data
from tagrouter.core.tag_heads import FEATURE_LAYERS, FEATURES, METADATA_KEY, OUTPUT_PREFIX, TaggerHeads

EMBEDDING = "sentence_embedding"
MASK = "attention_mask"
PREFIX = "tagger."  # names of the features' and heads' nodes and initializers
EPSILON = 1e-9  # an empty mask or a zero vector divides by this, not by 0


def layer_output(index: int) -> str:
    """The tensor of the exported graph (tagrouter.dev.export_model) that is layer `index`'s output."""
    return f"/bert/encoder/layer.{index}/output/LayerNorm/LayerNormalization_output_0"


def _strip(graph: onnx.GraphProto) -> None:
    """Remove heads attached before."""
    keep_nodes = [n for n in graph.node if not n.name.startswith(PREFIX)]
    del graph.node[:]
    graph.node.extend(keep_nodes)
    keep_init = [i for i in graph.initializer if not i.name.startswith(PREFIX)]
    del graph.initializer[:]
    graph.initializer.extend(keep_init)
    keep_out = [o for o in graph.output if not o.name.startswith(OUTPUT_PREFIX) and o.name != FEATURES]
    del graph.output[:]
    graph.output.extend(keep_out)


def _features(graph: onnx.GraphProto, batch) -> int:
    """Adds the `FEATURES` output; returns its width."""
    produced = {o for n in graph.node for o in n.output}
    layers = [layer_output(i) for i in range(FEATURE_LAYERS - 1)]
    missing = [t for t in layers if t not in produced]
    if missing:
        raise ValueError(f"the model has no layer output {missing[0]!r} to pool the tagger's features from "
                         "(export it with `make model`)")
    dim = next(o for o in graph.output if o.name == EMBEDDING).type.tensor_type.shape.dim[1].dim_value
    lower = len(layers)
    f = f"{PREFIX}features."
    graph.initializer.extend([
        numpy_helper.from_array(np.array([-1], dtype=np.int64), f + "last_axis"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), f + "token_axis"),
        numpy_helper.from_array(np.array([0, lower, dim], dtype=np.int64), f + "blocks"),
        numpy_helper.from_array(np.array([0, lower * dim], dtype=np.int64), f + "flat"),
        numpy_helper.from_array(np.array(EPSILON, dtype=np.float32), f + "epsilon"),
        numpy_helper.from_array(np.array(1 / np.sqrt(FEATURE_LAYERS), dtype=np.float32), f + "scale")])
    # The lower layers side by side, summed over the real tokens and each block scaled to unit length
    # (the mean's division by the token count would cancel there): a dozen nodes for all of them.
    nodes = [
        helper.make_node("Cast", [MASK], [f + "mask"], name=f + "cast", to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", [f + "mask", f + "last_axis"], [f + "mask3"], name=f + "unsqueeze"),
        helper.make_node("Concat", layers, [f + "layers"], name=f + "layers", axis=-1),
        helper.make_node("Mul", [f + "layers", f + "mask3"], [f + "masked"], name=f + "masked"),
        helper.make_node("ReduceSum", [f + "masked", f + "token_axis"], [f + "sum"], name=f + "sum", keepdims=0),
        helper.make_node("Reshape", [f + "sum", f + "blocks"], [f + "per_layer"], name=f + "per_layer"),
        helper.make_node("ReduceL2", [f + "per_layer"], [f + "norm"], name=f + "norm", axes=[-1], keepdims=1),
        helper.make_node("Max", [f + "norm", f + "epsilon"], [f + "safe_norm"], name=f + "safe_norm"),
        helper.make_node("Div", [f + "per_layer", f + "safe_norm"], [f + "unit"], name=f + "unit"),
        helper.make_node("Reshape", [f + "unit", f + "flat"], [f + "lower"], name=f + "lower"),
        helper.make_node("Concat", [f + "lower", EMBEDDING], [f + "concat"], name=f + "concat", axis=-1),
        helper.make_node("Mul", [f + "concat", f + "scale"], [FEATURES], name=f + "scale"),
    ]
    graph.node.extend(nodes)
    out = helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, [None, FEATURE_LAYERS * dim])
    out.type.tensor_type.shape.dim[0].CopyFrom(batch)
    graph.output.append(out)
    return FEATURE_LAYERS * dim


def attach_heads(model: onnx.ModelProto, heads: TaggerHeads | None) -> onnx.ModelProto:
    """`model` with the tagger's features and `heads` after them (in place; also returned). Heads
    trained on features of another width are left out, with a warning."""
    graph = model.graph
    outputs = {o.name: o for o in graph.output}
    if EMBEDDING not in outputs:
        raise ValueError(f"the model has no output {EMBEDDING!r} to attach the tagger's heads to")
    _strip(graph)
    batch = outputs[EMBEDDING].type.tensor_type.shape.dim[0]
    width = _features(graph, batch)
    if heads is not None and heads.width != width:
        logging.getLogger(__name__).warning(
            "the tagger heads %s read %d features, the graph gives %d: left out (retrain them with "
            "`make tagger-heads`, then `make model`)", heads.version, heads.width, width)
        heads = None
    dim = width // FEATURE_LAYERS
    for level, head in (heads.heads.items() if heads else ()):
        source, matrix = FEATURES, head.weight
        if not head.weight[:, :-dim].any():
            # a head on the last layer alone reads the embedding itself (the features' last block is
            # it over sqrt(FEATURE_LAYERS)): the same logits for a sixth of the multiplications
            source, matrix = EMBEDDING, head.weight[:, -dim:] / np.sqrt(FEATURE_LAYERS)
        weight = numpy_helper.from_array(np.ascontiguousarray(matrix.T, dtype=np.float32), f"{PREFIX}{level}.weight")
        bias = numpy_helper.from_array(np.ascontiguousarray(head.bias, dtype=np.float32), f"{PREFIX}{level}.bias")
        graph.initializer.extend([weight, bias])
        scores, logits, probs = f"{PREFIX}{level}.scores", f"{PREFIX}{level}.logits", f"{OUTPUT_PREFIX}{level}"
        graph.node.extend([
            helper.make_node("MatMul", [source, weight.name], [scores], name=f"{PREFIX}{level}.matmul"),
            helper.make_node("Add", [scores, bias.name], [logits], name=f"{PREFIX}{level}.add"),
            helper.make_node("Softmax", [logits], [probs], name=f"{PREFIX}{level}.softmax", axis=-1),
        ])
        out = helper.make_tensor_value_info(probs, TensorProto.FLOAT, [None, len(head.names)])
        out.type.tensor_type.shape.dim[0].CopyFrom(batch)
        graph.output.append(out)
    props = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    if heads is not None:
        model.metadata_props.add(key=METADATA_KEY, value=heads.version)
    onnx.checker.check_model(model)
    return model


def attach(model_path: Path, heads_dir: Path = data.VOCABULARY_DIR) -> bool:
    """Attaches the features and the heads saved in `heads_dir` to the model file; whether the heads went in."""
    model = onnx.load(str(model_path))
    partial = Path(model_path).with_suffix(".partial")
    attach_heads(model, TaggerHeads.load(heads_dir))
    onnx.save(model, str(partial))
    os.replace(partial, model_path)  # a reader sees the old graph or the new one, never half of one
    return any(p.key == METADATA_KEY for p in model.metadata_props)


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
        went_in = attach(args.model, args.heads)
        print(f"{args.model}: features and heads attached" if went_in else f"{args.model}: features attached, no heads")


if __name__ == "__main__":
    main()
