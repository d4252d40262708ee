"""The tag-quality pipeline on a tiny held-out subset, with the real encoder and vocabulary."""
import numpy as np
import pytest

from services.common.settings import DEFAULT_MODEL_DIR, DEFAULT_VOCAB_DIR
from tagrouter.core.vocabulary import Vocabulary
from tagrouter.offline import tag_ablation, tag_quality
from tagrouter.offline.vocab_build import RAW_DIR


@pytest.mark.skipif(not RAW_DIR.exists() or not (DEFAULT_MODEL_DIR / "model.onnx").exists(),
                    reason="needs ../shared/data/raw and `make model`")
def test_tag_quality_runs_on_a_tiny_held_out_subset():
    from tagrouter.core.encoder import Encoder

    vocab = Vocabulary.load(DEFAULT_VOCAB_DIR)
    prompts = [p for p in tag_quality.held_out_prompts(RAW_DIR, 0.3, per_label=1)
               if "vicuna" in p.labels or "routerbench" in p.labels]
    assert 5 <= len(prompts) <= 20
    rows = tag_quality.measure(vocab, prompts, Encoder(DEFAULT_MODEL_DIR).embed([p.text for p in prompts]))
    assert {(r.level, r.source) for r in rows} >= {("task", "vicuna"), ("task", "routerbench"), ("task", "all")}
    for r in rows:
        assert 0 <= r.top1 <= r.top3 <= 1 and 0 <= r.coverage <= 1
    text = tag_quality.render(vocab, rows, len(prompts), "ABLATION")
    assert "| task | routerbench |" in text and "ABLATION" in text and vocab.version in text


def test_macro_f1_counts_a_label_without_a_tag_as_a_miss():
    truth = np.array([0, 0, 1, -1])
    assert tag_quality.macro_f1(truth, np.array([0, 0, 1, 1])) == pytest.approx((1 + 2 / 3) / 2)
    assert tag_quality.macro_f1(np.array([-1]), np.array([0])) != tag_quality.macro_f1(np.array([-1]), np.array([0]))


def test_ablation_table_shows_each_variant_against_task_only():
    rows = [{"suite": "s1", "auc": {"task": 0.5, "task + domain": 0.52}}]
    table = tag_ablation.ablation_table(rows)
    assert "| task | 0.5000 |" in table and "0.5200 (+0.0200)" in table
