"""A suite that breaks the format fails with the file, line and key."""
import json
from pathlib import Path

import numpy as np
import pytest

from tagrouter.offline.suite import ModelInfo, Suite, SuiteError, load_suite

MODELS = {"big": {"input_usd_per_mtok": 10, "output_usd_per_mtok": 30},
          "small": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}


def row(qid, model, score, **kw):
    base = {"query_id": qid, "query": f"question {qid}", "model": model, "score": score, "input_tokens": 10,
            "output_tokens": 20, "cost_usd": 0.001, "tokens_estimated": True}
    base.update(kw)
    return base


def write_suite(folder: Path, rows, splits=None, **meta):
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"name": "tiny", "description": "", "source": "", "score_kind": "correctness", "tie_margin": 0.0,
           "models": MODELS, "splits": splits or {"train": ["q1"], "valid": ["q2"], "test": []}}
    doc.update(meta)
    (folder / "suite.json").write_text(json.dumps(doc))
    (folder / "outcomes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


GOOD = [row("q1", "big", 1), row("q1", "small", 0), row("q2", "big", 1), row("q2", "small", 1)]


def test_a_valid_suite_loads(tmp_path):
    suite = load_suite(write_suite(tmp_path / "s", GOOD))
    assert suite.model_names == ["big", "small"]
    assert suite.scores.tolist() == [[1, 0], [1, 1]]
    assert suite.rows("train").tolist() == [0]


def test_missing_model_row_names_file_line_and_key(tmp_path):
    with pytest.raises(SuiteError, match=r"outcomes.jsonl:3: key 'model': query_id 'q2' has no row for model 'small'"):
        load_suite(write_suite(tmp_path / "s", GOOD[:3]))


def test_score_outside_unit_interval(tmp_path):
    rows = GOOD[:1] + [row("q1", "small", 1.5)] + GOOD[2:]
    with pytest.raises(SuiteError, match=r"outcomes.jsonl:2: key 'score' must be in \[0, 1\]"):
        load_suite(write_suite(tmp_path / "s", rows))


def test_a_model_name_weights_cannot_hold_is_refused(tmp_path):
    models = {"big|v2": MODELS["big"], "small": MODELS["small"]}
    rows = [row(q, "big|v2" if m == "big" else m, 1) for q in ("q1", "q2") for m in ("big", "small")]
    with pytest.raises(SuiteError, match=r"suite.json: key 'models': model name 'big\|v2' must be"):
        load_suite(write_suite(tmp_path / "s", rows, models=models))


def test_unknown_split_id(tmp_path):
    splits = {"train": ["q1"], "valid": ["q9"], "test": []}
    with pytest.raises(SuiteError, match=r"suite.json: key 'splits.valid': query id 'q9' has no rows"):
        load_suite(write_suite(tmp_path / "s", GOOD, splits=splits))


def test_missing_key_and_bad_json(tmp_path):
    rows = [dict(GOOD[0])]
    del rows[0]["cost_usd"]
    with pytest.raises(SuiteError, match=r"outcomes.jsonl:1: key 'cost_usd' is missing"):
        load_suite(write_suite(tmp_path / "a", rows + GOOD[1:]))
    folder = write_suite(tmp_path / "b", GOOD)
    with open(folder / "outcomes.jsonl", "a") as fh:
        fh.write("{not json\n")
    with pytest.raises(SuiteError, match=r"outcomes.jsonl:5: not valid JSON"):
        load_suite(folder)


def test_unknown_model_and_duplicate_row(tmp_path):
    with pytest.raises(SuiteError, match=r":2: key 'model': 'medium' is not in suite.json's models"):
        load_suite(write_suite(tmp_path / "a", [GOOD[0], row("q1", "medium", 1)]))
    with pytest.raises(SuiteError, match=r":2: key 'model': second row for query_id 'q1'"):
        load_suite(write_suite(tmp_path / "b", [GOOD[0], GOOD[0]]))


def test_non_utf8_outcomes(tmp_path):
    folder = write_suite(tmp_path / "s", GOOD)
    (folder / "outcomes.jsonl").write_bytes(b'{"query_id": "\xff"}\n')
    with pytest.raises(SuiteError, match="outcomes.jsonl: not UTF-8"):
        load_suite(folder)


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(SuiteError, match="not a folder"):
        load_suite(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SuiteError, match="suite.json: missing"):
        load_suite(tmp_path / "empty")


def test_with_train_size_cuts_train_only_and_is_the_same_for_one_seed():
    from tagrouter.offline.suite import with_train_size

    rng = np.random.default_rng(0)
    q, m = 30, 2
    suite = Suite("s", Path("."), 0.0, "correctness", [ModelInfo("a", 1, 1), ModelInfo("b", 2, 2)],
                  [str(i) for i in range(q)], ["x"] * q, [None] * q, rng.random((q, m)), rng.random((q, m)),
                  np.ones((q, m)), np.ones((q, m)),
                  {"train": np.arange(20), "valid": np.arange(20, 25), "test": np.arange(25, 30)})
    cut = with_train_size(suite, 8, seed=3)
    assert len(cut.rows("train")) == 8 and set(cut.rows("train")) <= set(range(20))
    assert (cut.rows("valid") == suite.rows("valid")).all() and (cut.rows("test") == suite.rows("test")).all()
    assert (with_train_size(suite, 8, seed=3).rows("train") == cut.rows("train")).all()
    assert len(suite.rows("train")) == 20
    with pytest.raises(ValueError):
        with_train_size(suite, 21)
