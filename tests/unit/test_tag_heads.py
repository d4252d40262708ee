"""The trained tagger: its heads in the ONNX graph, abstention, and a vocabulary of kinds of work."""
import dataclasses
import json
import shutil

import numpy as np
import pytest

from services.common.settings import DEFAULT_MODEL_DIR, DEFAULT_VOCAB_DIR
from tagrouter.core.tag_heads import FEATURE_LAYERS, FEATURES, OUTPUT_PREFIX, TaggerHeads
from tagrouter.core.tagging import slug
from tagrouter.core.vocabulary import Vocabulary
from tagrouter.data import TAXONOMY_FILE
from tagrouter.offline.train_tagger import MIN_THRESHOLD

needs_model = pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "model.onnx").exists(), reason="needs `make model`")
TEXTS = ["Write a Python function that reverses a linked list", "Compose a sonnet about autumn rain",
         "Solve for x: 3x + 7 = 22"]


def test_committed_heads_load_and_name_only_vocabulary_tags():
    heads, vocab = TaggerHeads.load(DEFAULT_VOCAB_DIR), Vocabulary.load(DEFAULT_VOCAB_DIR)
    assert heads is not None and set(heads.heads) == {"task", "domain", "topic"}
    for level, head in heads.heads.items():
        assert set(head.names) == {t["name"] for t in vocab.tags if t["level"] == level}
        assert MIN_THRESHOLD <= head.threshold < 1  # no tag its probability calls more likely wrong than right
        assert head.weight.shape == (len(head.names), FEATURE_LAYERS * vocab.prototypes.shape[1])


def test_no_task_or_domain_tag_names_a_benchmark_or_dataset():
    vocab = Vocabulary.load(DEFAULT_VOCAB_DIR)
    taxonomy = {t["name"] for t in json.loads(TAXONOMY_FILE.read_text())["tags"]}
    # every corpus label below the topic level: benchmarks, Vicuna categories, AlpacaEval source sets
    datasets = {"mbpp", "arc-challenge", "winogrande", "koala", "oasst", "selfinstruct", "helpful-base", "vicuna",
                "generic", "knowledge", "fermi", "counterfactual", "writing", "coding", "math", "common-sense"}
    for tag in vocab.tags:
        if tag["level"] in ("task", "domain"):
            assert tag["name"] in taxonomy, tag["name"]
            assert slug(tag["name"].split(":", 1)[1]) not in datasets, tag["name"]
    aliases = {a for t in vocab.tags for a in t.get("aliases", [])}
    assert {"routerbench:mbpp", "routerbench:arc-challenge", "routerbench:winogrande"} <= aliases  # training labels


@needs_model
def test_heads_in_the_graph_give_the_probabilities_of_the_numpy_maths(tmp_path):
    from tagrouter.core.encoder import Encoder
    from tagrouter.dev.tagger_graph import attach

    for name in ("model.onnx", "tokenizer.json"):
        shutil.copy(DEFAULT_MODEL_DIR / name, tmp_path / name)
    assert attach(tmp_path / "model.onnx")
    encoder = Encoder(tmp_path)
    heads = TaggerHeads.load(DEFAULT_VOCAB_DIR)
    names = [o.name for o in encoder.session.get_outputs()]
    assert names[:2] == ["token_embeddings", "sentence_embedding"]  # the encoder's outputs keep their order
    assert names[2:] == [FEATURES] + [OUTPUT_PREFIX + lv for lv in heads.heads]
    assert encoder.heads_version == heads.version
    encoded = encoder.encode(TEXTS, features=True)
    # the last layer's block of the features is the sentence embedding, as the tagger pools it
    np.testing.assert_allclose(encoded.features[:, -encoder.dim:] * np.sqrt(FEATURE_LAYERS), encoded.embeddings,
                               atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(encoded.features, axis=1), 1, atol=1e-5)
    for level, probs in heads.probabilities(encoded.features).items():
        np.testing.assert_allclose(encoded.tag_probs[level], probs, atol=1e-5)
        np.testing.assert_allclose(encoded.tag_probs[level].sum(axis=1), 1, atol=1e-5)
    import onnx

    reads = {n.name: n.input[0] for n in onnx.load(str(tmp_path / "model.onnx")).graph.node if n.name.startswith("tagger.")}
    for level, r in heads.record["levels"].items():  # a head on the last layer alone reads the embedding
        expected = "sentence_embedding" if r["features"] == "last layer" else FEATURES
        assert reads[f"tagger.{level}.matmul"] == expected
    assert attach(tmp_path / "model.onnx")  # attaching again replaces the heads, adds none
    assert len(Encoder(tmp_path).head_outputs) == len(heads.heads)


@needs_model
def test_a_level_abstains_below_its_threshold_and_names_its_top_tag_above():
    from tagrouter.core.tag_model import TagModel

    tagger = TagModel.load(DEFAULT_MODEL_DIR, use_heads=True)
    tagged = tagger.tag(TEXTS)
    tasks = [[n for n, lv, _ in t.tags if lv == "task"] for t in tagged]
    assert tasks == [["task:code-generation"], ["task:creative-writing"], ["task:math-problem"]]
    strict = {lv: dataclasses.replace(h, threshold=1.01) for lv, h in tagger.heads.heads.items()}
    silent = TagModel(tagger.encoder, tagger.vocabulary, 2, 0.15, heads=TaggerHeads.build(strict))
    for t in silent.tag(TEXTS):
        assert all(lv == "attr" for _, lv, _ in t.tags)  # nothing above the threshold: no task, domain, topic


@needs_model
def test_tag_says_which_levels_abstained_and_what_their_heads_would_have_said(monkeypatch, capsys):
    from tagrouter.cli import main
    from tagrouter.core.tag_model import TagModel

    tagger = TagModel.load(DEFAULT_MODEL_DIR, use_heads=True)
    texts = ["hi", "How do I get a refund for a cancelled flight?", *TEXTS] * 15  # more than one batch of 64
    probs = tagger.encode(texts).tag_probs  # the graph's, from the same one call `tag` makes
    for row, tagged in enumerate(tagger.tag(texts)):
        served = {lv: score for _, lv, score in tagged.tags if lv in tagger._head_levels}
        abstained = {a.level: a for a in tagged.abstained}
        assert served.keys().isdisjoint(abstained) and served.keys() | abstained.keys() == set(tagger._head_levels)
        for level, a in abstained.items():
            names, threshold = tagger._head_levels[level]
            assert a.probability < a.threshold == threshold and a.top in names
            assert a.probability == pytest.approx(probs[level][row].max())  # its head's top probability
        assert all(score >= tagger._head_levels[lv][1] for lv, score in served.items())
    refund = tagger.tag(["How do I get a refund for a cancelled flight?"])[0]
    assert {a.level for a in refund.abstained} >= {"task", "domain"}  # like no labelled prompt: no task, no field
    monkeypatch.setenv("TAGROUTER_TAGGER_HEADS", "true")
    assert main(["tag", "--json", "hi"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (hi,) = tagger.tag(["hi"])  # alone, as the command tags it (int8 activations are quantised per batch)
    assert doc["abstained"] == [{"level": a.level, "top": a.top, "probability": round(a.probability, 4),
                                 "threshold": a.threshold} for a in hi.abstained] != []
    assert main(["tag", "hi"]) == 0
    text = capsys.readouterr().out
    assert "(none)" in text and "is below" in text and f"tagger heads {tagger.heads.version}" in text


@needs_model
def test_heads_trained_on_other_features_are_left_out_of_the_graph_and_computed_after_it(tmp_path):
    from tagrouter.core.encoder import Encoder
    from tagrouter.core.tag_model import TagModel
    from tagrouter.dev.tagger_graph import attach

    for name in ("model.onnx", "tokenizer.json"):
        shutil.copy(DEFAULT_MODEL_DIR / name, tmp_path / name)
    heads = TaggerHeads.load(DEFAULT_VOCAB_DIR)
    narrow = {lv: dataclasses.replace(h, weight=h.weight[:, :7]) for lv, h in heads.heads.items()}
    vocab_dir = tmp_path / "vocab"
    shutil.copytree(DEFAULT_VOCAB_DIR, vocab_dir)
    TaggerHeads.build(narrow).save(vocab_dir)
    assert not attach(tmp_path / "model.onnx", vocab_dir)  # features in, heads of another width out
    encoder = Encoder(tmp_path)
    assert encoder.feature_width == heads.width and not encoder.head_outputs and encoder.heads_version is None
    with pytest.raises(ValueError, match="make model"):  # heads the graph cannot feed fail at load, not per query
        TagModel(encoder, Vocabulary.load(DEFAULT_VOCAB_DIR), 2, 0.15, heads=TaggerHeads.build(narrow))
    # the served heads against a graph without them: the tagger computes them from the graph's features
    tagger = TagModel(encoder, Vocabulary.load(DEFAULT_VOCAB_DIR), 2, 0.15, heads=heads)
    in_graph = TagModel.load(DEFAULT_MODEL_DIR, use_heads=True)
    for a, b in zip(tagger.tag(TEXTS), in_graph.tag(TEXTS)):
        assert [n for n, _, _ in a.tags] == [n for n, _, _ in b.tags]


@needs_model
def test_the_tagger_service_serves_the_heads_when_asked_and_the_prototypes_by_default():
    from services.common.settings import ConfigError, TaggerSettings
    from services.tagger.app import load_tagger

    assert load_tagger(TaggerSettings.from_env({})).heads is None
    tagger = load_tagger(TaggerSettings.from_env({"TAGROUTER_TAGGER_HEADS": "true"}))
    assert tagger.heads is not None and tagger.encoder.heads_version == tagger.heads.version
    (tagged,) = tagger.tag([TEXTS[0]])
    assert [n for n, lv, _ in tagged.tags if lv in ("task", "domain")] == ["task:code-generation",
                                                                           "domain:software-engineering"]
    with pytest.raises(ConfigError, match="TAGROUTER_TAGGER_HEADS"):
        TaggerSettings.from_env({"TAGROUTER_TAGGER_HEADS": "maybe"})


@needs_model
def test_the_features_are_each_layer_mean_pooled_over_the_real_tokens(tmp_path):
    import onnx

    from tagrouter.core.encoder import Encoder
    from tagrouter.dev.tagger_graph import layer_output

    model = onnx.load(str(DEFAULT_MODEL_DIR / "model.onnx"))
    lower = [layer_output(i) for i in range(FEATURE_LAYERS - 1)]
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in lower)
    onnx.save(model, str(tmp_path / "model.onnx"))
    shutil.copy(DEFAULT_MODEL_DIR / "tokenizer.json", tmp_path / "tokenizer.json")
    encoder = Encoder(tmp_path)
    texts = ["hi", TEXTS[0]]  # padded to the longer: the short one's padding must not count
    ids = [encoder.tokenizer.encode(t).ids for t in texts]
    width = max(len(i) for i in ids)
    feed = {"input_ids": np.array([i + [0] * (width - len(i)) for i in ids], dtype=np.int64),
            "attention_mask": np.array([[1] * len(i) + [0] * (width - len(i)) for i in ids], dtype=np.int64)}
    features, embeddings, *layers = encoder.session.run([FEATURES, "sentence_embedding", *lower], feed)
    mask = feed["attention_mask"][:, :, None]
    blocks = [(h * mask).sum(axis=1) / mask.sum(axis=1) for h in layers] + [embeddings]
    expected = np.concatenate([b / np.linalg.norm(b, axis=1, keepdims=True) for b in blocks], axis=1)
    np.testing.assert_allclose(features, expected / np.sqrt(FEATURE_LAYERS), atol=1e-5)


def test_a_head_saved_without_its_zero_columns_loads_as_it_was(tmp_path):
    heads = TaggerHeads.load(DEFAULT_VOCAB_DIR)
    shutil.copytree(DEFAULT_VOCAB_DIR, tmp_path / "vocab")
    heads.save(tmp_path / "vocab")
    again = TaggerHeads.load(tmp_path / "vocab")
    assert again.version == heads.version
    with np.load(tmp_path / "vocab" / "heads.npz") as arrays:
        stored = {level: arrays[f"{level}.weight"].shape[1] for level in heads.heads}
    for level, head in heads.heads.items():
        np.testing.assert_array_equal(again.heads[level].weight, head.weight)
        assert stored[level] == head.weight.shape[1] - np.flatnonzero(head.weight.any(axis=0))[0]
    assert min(stored.values()) < heads.width  # the topic head, on the last layer alone, is stored narrow
