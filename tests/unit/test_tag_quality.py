"""The tag-quality pipeline on a tiny held-out subset, with the real encoder, vocabulary and heads."""
import numpy as np
import pytest

from services.common.settings import DEFAULT_MODEL_DIR, DEFAULT_VOCAB_DIR
from tagrouter.core.tag_heads import TaggerHeads
from tagrouter.core.vocabulary import Vocabulary
from tagrouter.offline import tag_ablation, tag_quality, tag_quality_heads
from tagrouter.offline.train_tagger import MIN_THRESHOLD, THRESHOLDS, choose_threshold, reliability, wilson_lower
from tagrouter.offline.vocab_build import RAW_DIR


@pytest.mark.skipif(not RAW_DIR.exists() or not (DEFAULT_MODEL_DIR / "model.onnx").exists(),
                    reason="needs ../shared/data/raw and `make model`")
def test_tag_quality_runs_on_a_tiny_held_out_subset():
    from tagrouter.core.encoder import Encoder

    vocab, heads = Vocabulary.load(DEFAULT_VOCAB_DIR), TaggerHeads.load(DEFAULT_VOCAB_DIR)
    prompts = [p for p in tag_quality.held_out_prompts(RAW_DIR, 0.3, per_label=1)
               if "vicuna" in p.labels or "routerbench" in p.labels]
    assert 5 <= len(prompts) <= 20
    embeddings, features = Encoder(DEFAULT_MODEL_DIR).embed_with_features([p.text for p in prompts])
    rows = tag_quality_heads.level_rows(vocab, tag_quality_heads.heads_levels(heads, features), prompts)
    assert {(r["level"], r["source"]) for r in rows} >= {("task", "vicuna"), ("task", "routerbench"), ("task", "all")}
    for r in rows:
        assert 0 <= r["top1"] <= r["top3"] <= 1 and 0 <= r["coverage"] <= 1 and 0 <= r["recall"] <= r["coverage"]
    section = tag_quality_heads.quality_section(vocab, heads, vocab, prompts, embeddings, features, 2, 0.15, 0.4,
                                                shared_features=features)
    assert "shared calls" not in section  # no Arena-Hard v2 prompt among these: no line for it
    text = tag_quality.render(vocab, len(prompts), section, "ABLATION", "COMPARISON")
    assert "| task | routerbench |" in text and "| heads |" in text and "| prototypes |" in text
    assert "ABLATION" in text and "COMPARISON" in text and vocab.version in text


def test_served_precision_counts_every_served_tag_and_recall_every_query():
    served = tag_quality_heads.Served(["a", "b"], np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5]]),
                                      np.array([[True, False], [True, True], [False, True], [False, False]]))
    row = tag_quality_heads._row("task", "s", served, np.arange(4), np.array([0, 1, 0, 1]))
    # served: a (right), a and b (b right), b (wrong); the last query gets none
    assert row["precision"] == pytest.approx(2 / 4) and row["recall"] == pytest.approx(2 / 4)
    assert row["coverage"] == pytest.approx(3 / 4) and row["top1"] == pytest.approx(1 / 4)


def test_threshold_is_the_smallest_whose_served_tags_reach_the_target():
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.6, 0.4], [0.55, 0.45]])
    truth = np.array([0, 0, 1, 0])  # the 0.6 row is wrong
    # 3 of 4 right (lower bound .43) passes a floor of .3 from the first threshold, which is one half: a tag
    # whose calibrated probability says it is more likely wrong than right is never served
    assert choose_threshold(probs, truth, floor=0.3) == pytest.approx(0.5) == MIN_THRESHOLD == min(THRESHOLDS)
    # .43 fails at .50 and .55, 2 of 3 right (.32) at .60: the smallest that passes is .65 (2 of 2, .55)
    assert choose_threshold(probs, truth, floor=0.5) == pytest.approx(0.65)
    assert choose_threshold(probs, truth, floor=0.9) == pytest.approx(0.95)  # never sure enough: the largest
    assert wilson_lower(90, 100) < 0.9 < wilson_lower(990, 1000) + 0.02 and wilson_lower(0, 0) == 0
    bins = reliability(probs.max(axis=1), probs.argmax(axis=1) == truth)
    assert sum(b["queries"] for b in bins) == 4


def test_ablation_table_shows_each_variant_against_task_only():
    rows = [{"suite": "s1", "auc": {"task": 0.5, "task + domain": 0.52}}]
    table = tag_ablation.ablation_table(rows)
    assert "| task | 0.5000 |" in table and "0.5200 (+0.0200)" in table


@pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "model.onnx").exists(), reason="needs `make model`")
def test_batch_stability_counts_queries_whose_tags_change_with_their_batch():
    from tagrouter.core.tag_model import TagModel

    tagger = TagModel.load(DEFAULT_MODEL_DIR, use_heads=True)
    texts = ["Write a Python function that reverses a linked list", "Solve for x: 3x + 7 = 22", "hi",
             "Compose a sonnet about autumn rain", "Who won the 2018 football world cup?"] * 4
    text = tag_quality_heads.batch_stability(tagger, texts, batch=len(texts))  # alone, then all in one call
    differ = int(text.split(" of 20 ")[0].rsplit(" ", 1)[1])
    alone = [tagger.tag([t])[0].tags for t in texts]
    together = [t.tags for t in tagger.tag(texts)]
    names = [[{n for n, lv, _ in tags if lv in ("task", "domain")} for tags in run] for run in (alone, together)]
    assert differ == sum(a != b for a, b in zip(*names)), text
    assert "moves by up to" in text and "one scale per onnxruntime call" in text


@pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "model.onnx").exists(), reason="needs `make model`")
def test_tag_quality_loads_the_committed_heads_though_the_served_tagger_has_none(tmp_path):
    from tests.integration.test_cli import tagrouter

    # past the heads (which it once could not find), it stops at the empty corpus folder
    out = tagrouter("tag-quality", "--raw", str(tmp_path), "--no-ablation")
    assert out.returncode != 0
    assert "holds no tagger heads" not in out.stderr and str(tmp_path) in out.stderr, out.stderr


def test_a_head_on_the_last_layer_alone_weighs_nothing_on_the_other_layers():
    from tagrouter.core.tag_heads import FEATURE_LAYERS
    from tagrouter.offline.train_tagger import FEATURE_SETS, feature_mask

    width = FEATURE_LAYERS * 4
    assert np.array_equal(feature_mask("all layers", width), np.ones(width))
    last = feature_mask("last layer", width)
    assert not last[:-4].any() and np.allclose(last[-4:], np.sqrt(FEATURE_LAYERS))
    unit = np.full(width, 1 / np.sqrt(width))  # unit features, every block 1/sqrt(FEATURE_LAYERS) long
    assert np.linalg.norm((unit * last)[-4:]) == pytest.approx(1.0)  # the last block scaled back to unit length
    heads = TaggerHeads.load(DEFAULT_VOCAB_DIR)
    for level, r in heads.record["levels"].items():
        assert r["features"] in FEATURE_SETS
        if r["features"] == "last layer":
            weight = heads.heads[level].weight
            assert not weight[:, :-(weight.shape[1] // FEATURE_LAYERS)].any() and weight[:, -1].any()
    table = tag_quality_heads.features_table(heads.record["levels"])
    assert table.count("| yes |") == len(heads.heads)
