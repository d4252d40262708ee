"""`tagrouter suite import`: every format from a small file written here, and bad rows named by file, line, field."""
import csv
import json
import shlex

import pytest

from tagrouter.cli import main
from tagrouter.offline.suite import load_suite

PROMPTS = [f"question number {i}: explain topic {i}" for i in range(10)]


def write_csv(path, header, rows):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def run_import(tmp_path, fmt, *files, extra=()):
    out = tmp_path / "suite"
    code = main(["suite", "import", "--format", fmt, *map(str, files), "--out", str(out), *extra])
    return code, out


def test_rows_csv_with_prices_from_flags(tmp_path):
    rows = [(p, m, s) for i, p in enumerate(PROMPTS) for m, s in (("big", 1.0), ("small", (i % 2) * 1.0))]
    src = write_csv(tmp_path / "rows.csv", ["prompt", "model", "score"], rows)
    code, out = run_import(tmp_path, "rows", src, extra=["--price", "big=10,30", "--price", "small=0.5,1.5"])
    assert code == 0
    suite = load_suite(out)
    assert suite.model_names == ["big", "small"] and len(suite.queries) == 10
    assert {k: len(v) for k, v in suite.splits.items()} == {"train": 7, "valid": 1, "test": 2}
    assert suite.scores[:, 0].tolist() == [1.0] * 10
    assert suite.costs[0, 0] > suite.costs[0, 1] > 0


def test_rows_jsonl_with_own_costs_and_tokens(tmp_path):
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps({"prompt": p, "model": m, "score": 0.5, "cost": c, "input_tokens": 10,
                                       "output_tokens": 100}) + "\n"
                           for p in PROMPTS for m, c in (("a", 0.01), ("b", 0.001))))
    code, out = run_import(tmp_path, "rows", src)
    assert code == 0
    suite = load_suite(out)
    assert suite.costs[:, 0].tolist() == pytest.approx([0.01] * 10)
    assert suite.output_tokens[:, 1].tolist() == [100] * 10
    meta = json.loads((out / "suite.json").read_text())
    assert meta["models"]["a"]["input_usd_per_mtok"] == pytest.approx(0.01 / 110 * 1e6)


def test_routerbench_wide_csv(tmp_path):
    header = ["sample_id", "prompt", "eval_name", "m1", "m1|total_cost", "m1|model_response", "m2", "m2|total_cost"]
    rows = [(f"s{i}", p, "mmlu", 1, 0.002, "the answer is B", i % 2, 0.0001) for i, p in enumerate(PROMPTS)]
    code, out = run_import(tmp_path, "routerbench", write_csv(tmp_path / "rb.csv", header, rows))
    assert code == 0
    suite = load_suite(out)
    assert suite.model_names == ["m1", "m2"] and suite.score_kind == "correctness"
    assert suite.costs[:, 1].tolist() == pytest.approx([0.0001] * 10)


def test_alpacaeval_annotations_score_against_the_reference(tmp_path):
    doc = [{"instruction": p, "generator_1": "ref", "generator_2": "mine", "output_1": "x" * 40, "output_2": "y" * 80,
            "preference": 1.0 + (i % 3) / 2} for i, p in enumerate(PROMPTS)]
    src = tmp_path / "annotations.json"
    src.write_text(json.dumps(doc))
    code, out = run_import(tmp_path, "alpacaeval", src, extra=["--price", "ref=10,30", "--price", "mine=1,2"])
    assert code == 0
    suite = load_suite(out)
    assert suite.scores[:, suite.model_names.index("ref")].tolist() == [0.5] * 10
    assert sorted(set(suite.scores[:, suite.model_names.index("mine")].tolist())) == [0.0, 0.5, 1.0]
    assert suite.output_tokens[0, suite.model_names.index("mine")] == 20


def test_battles_become_mean_results(tmp_path):
    rows = [(p, "a", "b", w) for p, w in zip(PROMPTS, ["model_a", "model_b", "tie"] * 4)]
    rows.append((PROMPTS[0], "b", "a", "model_a"))  # a second battle on the same prompt: b wins it
    src = write_csv(tmp_path / "battles.csv", ["prompt", "model_a", "model_b", "winner"], rows)
    code, out = run_import(tmp_path, "battles", src, extra=["--prices", str(write_csv(
        tmp_path / "prices.csv", ["model", "input_usd_per_mtok", "output_usd_per_mtok"], [("a", 5, 15), ("b", 1, 2)]))])
    assert code == 0
    suite = load_suite(out)
    first = suite.query_ids.index(next(q for q, text in zip(suite.query_ids, suite.queries) if text == PROMPTS[0]))
    assert suite.scores[first].tolist() == [0.5, 0.5]  # a won once, b once


@pytest.mark.parametrize("fmt, name, content, where", [
    ("rows", "bad.csv", "prompt,model,score\nhi,a,0.5\nhi,b,1.7\n", "bad.csv:3: field 'score'"),
    ("rows", "bad.jsonl", '{"prompt": "hi", "model": "a", "score": 1}\n{"prompt": "", "model": "b", "score": 1}\n',
     "bad.jsonl:2: field 'prompt'"),
    ("rows", "bad2.jsonl", '{"prompt": "hi", "model": "a", "score": "high"}\n', "bad2.jsonl:1: field 'score'"),
    ("routerbench", "rb.csv", "prompt,m1,m1|total_cost\nhi,1,0.1\nho,x,0.1\n", "rb.csv:3: field 'm1'"),
    ("alpacaeval", "ae.json", json.dumps([{"instruction": "hi", "generator_1": "r", "generator_2": "m",
                                            "preference": 3}]), "ae.json: record 1: field 'preference'"),
    # a pretty-printed JSON list: the record's number, not a line number that is not its line
    ("alpacaeval", "ae2.json", json.dumps([{"instruction": "hi", "generator_1": "r", "generator_2": "m",
                                             "preference": 1}, {"instruction": "ho", "generator_1": "r"}], indent=1),
     "ae2.json: record 2: field 'generator_2'"),
    ("rows", "bool.jsonl", '{"prompt": "hi", "model": "a", "score": true}\n', "bool.jsonl:1: field 'score'"),
    ("rows", "surrogate.jsonl", '{"prompt": "hi \\ud800", "model": "a", "score": 1}\n',
     "surrogate.jsonl:1: field 'prompt'"),
    ("battles", "b.jsonl", '{"prompt": "hi", "model_a": "x", "model_b": "y", "winner": "x"}\n'
                           '{"prompt": "hi", "model_a": "x", "model_b": "y", "winner": "nobody"}\n',
     "b.jsonl:2: field 'winner'"),
])
def test_bad_rows_name_file_line_and_field(tmp_path, capsys, fmt, name, content, where):
    src = tmp_path / name
    src.write_text(content)
    code, _ = run_import(tmp_path, fmt, src, extra=["--price", "a=1,1"])
    assert code == 2
    assert where in capsys.readouterr().err


def test_a_model_without_cost_or_price_is_named(tmp_path, capsys):
    src = write_csv(tmp_path / "rows.csv", ["prompt", "model", "score"], [(p, m, 1) for p in PROMPTS for m in "ab"])
    code, _ = run_import(tmp_path, "rows", src, extra=["--price", "a=1,1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "rows.csv:3: field 'cost'" in err and "'b'" in err and "--price" in err


def test_a_failed_import_leaves_no_suite_and_keeps_an_older_one_whole(tmp_path, capsys):
    one_model = write_csv(tmp_path / "one.csv", ["prompt", "model", "score"], [(p, "a", 1) for p in PROMPTS])
    code, out = run_import(tmp_path, "rows", one_model, extra=["--price", "a=1,1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "one.csv" in err and "1 model (a)" in err and "at least two" in err
    assert not out.exists(), "a suite that cannot load was written"

    good = write_csv(tmp_path / "rows.csv", ["prompt", "model", "score"],
                     [(p, m, 1) for p in PROMPTS for m in "ab"])
    assert run_import(tmp_path, "rows", good, extra=["--price", "a=1,1", "--price", "b=2,2"])[0] == 0
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    # a later import that fails (a bad row on the last line, after every other row was read): the older suite stays
    again = write_csv(tmp_path / "again.csv", ["prompt", "model", "score"],
                      [*((p, m, 0) for p in PROMPTS for m in "ab"), ("late", "a", "high")])
    code, _ = run_import(tmp_path, "rows", again, extra=["--price", "a=1,1", "--price", "b=2,2"])
    assert code == 2
    assert f"again.csv:{2 * len(PROMPTS) + 2}: field 'score'" in capsys.readouterr().err
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.csv", "one.csv", "rows.csv", "suite"]


def rows_csv(tmp_path, models="ab", name="rows.csv", encoding="utf-8", prompts=PROMPTS):
    path = tmp_path / name
    with path.open("w", newline="", encoding=encoding) as f:
        csv.writer(f).writerows([("prompt", "model", "score"), *((p, m, 1) for p in prompts for m in models)])
    return path


@pytest.mark.parametrize("bad", ["a|b", "m" * 201, "tab\there", "bell\x07"])
def test_a_model_name_the_weights_refuse_is_named(tmp_path, capsys, bad):
    code, out = run_import(tmp_path, "rows", rows_csv(tmp_path, ["a", bad]), extra=["--price", "a=1,1"])
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "rows.csv:3: field 'model'" in err and "printable characters without '|'" in err


@pytest.mark.parametrize("column", ["tab\there", "a|b|score"])
def test_a_routerbench_column_the_weights_refuse_is_named(tmp_path, capsys, column):
    score = "|score" if column.endswith("|score") else ""
    header = ["prompt", f"m1{score}", column]
    code, _ = run_import(tmp_path, "routerbench", write_csv(tmp_path / "rb.csv", header, [(p, 1, 0) for p in PROMPTS]),
                         extra=["--price", "m1=1,1"])
    assert code == 2
    assert f"rb.csv:1: field {column!r}: model name" in capsys.readouterr().err


def test_routerbench_model_without_a_cost_column_takes_its_price(tmp_path, capsys):
    header = ["prompt", "m1", "m1|total_cost", "m2"]
    src = write_csv(tmp_path / "rb.csv", header, [(p, 1, 0.002, i % 2) for i, p in enumerate(PROMPTS)])
    code, out = run_import(tmp_path, "routerbench", src, extra=["--price", "m2=1,2"])
    assert code == 0
    suite = load_suite(out)
    assert suite.model_names == ["m1", "m2"] and suite.costs[0, 1] > 0
    code, _ = run_import(tmp_path, "routerbench", src)
    assert code == 2
    err = capsys.readouterr().err
    assert "rb.csv:2: field 'cost'" in err and "'m2'" in err and "--price" in err


def test_routerbench_score_columns_beside_meta_columns(tmp_path, capsys):
    header = ["split", "sample_id", "eval_name", "prompt", "m1|score", "m2|score", "m1|total_cost", "m2|total_cost",
              "m1|resp_chars", "m2|resp_chars"]
    rows = [("train", f"s{i}", "arc", p, 1, i % 2, 0.002, 0.0001, 40, 400) for i, p in enumerate(PROMPTS)]
    rows.append(("test", "s10", "arc", "a prompt m2 has no score for", 1, "", 0.002, 0.0001, 40, 400))
    code, out = run_import(tmp_path, "routerbench", write_csv(tmp_path / "rb.csv", header, rows))
    assert code == 0
    assert "1 prompts without every model left out" in capsys.readouterr().out
    suite = load_suite(out)
    assert suite.model_names == ["m1", "m2"] and suite.output_tokens[0].tolist() == [10, 100]
    # an empty cell leaves its prompt out; a column without any score is an error, not a model left out
    rows = [r[:5] + ("",) + r[6:] for r in rows]
    code, _ = run_import(tmp_path, "routerbench", write_csv(tmp_path / "rb.csv", header, rows))
    assert code == 2
    assert "rb.csv:1: field 'm2|score': no row has a score" in capsys.readouterr().err


def test_routerbench_unknown_meta_column_says_what_was_taken_for_models(tmp_path, capsys):
    header = ["prompt", "split", "m1", "m1|total_cost", "m2", "m2|total_cost"]
    rows = [(p, "train", 1, 0.1, 0, 0.1) for p in PROMPTS]
    code, _ = run_import(tmp_path, "routerbench", write_csv(tmp_path / "rb.csv", header, rows))
    assert code == 2
    err = capsys.readouterr().err
    assert "rb.csv:2: field 'split'" in err and "split, m1, m2" in err and "|score" in err


def test_a_csv_field_longer_than_the_csv_default_limit(tmp_path, capsys):
    long = "x" * 200_000
    code, out = run_import(tmp_path, "rows", rows_csv(tmp_path, prompts=[long, *PROMPTS]),
                           extra=["--price", "a=1,1", "--price", "b=1,1"])
    assert code == 0 and long in load_suite(out).queries
    too_long = rows_csv(tmp_path, name="huge.csv", prompts=[*PROMPTS[:3], "y" * (8 * 1024 * 1024 + 1)])
    code, _ = run_import(tmp_path, "rows", too_long, extra=["--price", "a=1,1", "--price", "b=1,1"])
    assert code == 2
    assert "huge.csv:8:" in capsys.readouterr().err


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    src = rows_csv(tmp_path, encoding="utf-8-sig")
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"a": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1},
                                  "b": {"input_usd_per_mtok": 2, "output_usd_per_mtok": 2}}), encoding="utf-8-sig")
    assert run_import(tmp_path, "rows", src, extra=["--prices", str(prices)])[0] == 0
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("".join(json.dumps({"prompt": p, "model": m, "score": 1, "cost": 0.1}) + "\n"
                             for p in PROMPTS for m in "ab"), encoding="utf-8-sig")
    assert run_import(tmp_path, "rows", jsonl)[0] == 0


@pytest.mark.parametrize("margin", ["2", "-0.1", "nan", "inf"])
def test_a_tie_margin_outside_0_1_names_the_flag(tmp_path, capsys, margin):
    code, out = run_import(tmp_path, "rows", rows_csv(tmp_path),
                           extra=["--price", "a=1,1", "--price", "b=1,1", f"--tie-margin={margin}"])
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "--tie-margin" in err and "suite.json" not in err


def test_prices_as_a_json_list_of_records(tmp_path, capsys):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps([{"model": "a", "input_usd_per_mtok": 1, "output_usd_per_mtok": 3},
                                  {"model": "b", "input_usd_per_mtok": 2, "output_usd_per_mtok": 4}]))
    code, out = run_import(tmp_path, "rows", rows_csv(tmp_path), extra=["--prices", str(prices)])
    assert code == 0
    assert [m.output_usd_per_mtok for m in load_suite(out).models] == [3, 4]
    prices.write_text(json.dumps([{"model": "a", "input_usd_per_mtok": 1, "output_usd_per_mtok": 3},
                                  {"model": "b", "input_usd_per_mtok": 2}], indent=1))
    assert run_import(tmp_path, "rows", rows_csv(tmp_path), extra=["--prices", str(prices)])[0] == 2
    assert "prices.json: record 2: field 'output_usd_per_mtok'" in capsys.readouterr().err


def test_the_next_step_quotes_the_suite_path_and_out_dot_names_the_folder(tmp_path, capsys, monkeypatch):
    src, prices = rows_csv(tmp_path), ["--price", "a=1,1", "--price", "b=1,1"]
    out = tmp_path / "my suite"
    assert main(["suite", "import", "--format", "rows", str(src), "--out", str(out), *prices]) == 0
    assert f"tagrouter fit --suite {shlex.quote(str(out))} --out" in capsys.readouterr().out
    here = tmp_path / "named"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["suite", "import", "--format", "rows", str(src), "--out", ".", *prices]) == 0
    assert load_suite(here).name == "named"
    assert sorted(p.name for p in here.iterdir()) == ["outcomes.jsonl", "suite.json"]


def test_rows_without_output_tokens_are_said_to_price_the_input_alone(tmp_path, capsys):
    bare = write_csv(tmp_path / "bare.csv", ["prompt", "model", "score"], [(p, m, 1) for p in PROMPTS for m in "ab"])
    assert run_import(tmp_path / "one", "rows", bare, extra=["--price", "a=1,1", "--price", "b=2,2"])[0] == 0
    assert "note: 20 of 20 rows give no output tokens" in capsys.readouterr().out
    full = write_csv(tmp_path / "full.csv", ["prompt", "model", "score", "output_tokens"],
                     [(p, m, 1, 50) for p in PROMPTS for m in "ab"])
    assert run_import(tmp_path / "two", "rows", full, extra=["--price", "a=1,1", "--price", "b=2,2"])[0] == 0
    assert "no output tokens" not in capsys.readouterr().out
