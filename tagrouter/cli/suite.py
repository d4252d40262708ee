"""`tagrouter suite import`: one's own judged outcomes (rows, RouterBench, AlpacaEval, battles) -> a suite."""
from __future__ import annotations

import shlex
from pathlib import Path

from tagrouter.cli.common import fail, output_path


def cmd_import(args) -> int:
    from tagrouter.offline.suite_import import ImportFailure, build, read_prices

    try:
        prices = read_prices(args.prices, args.price or [])
        summary = build(args.format, args.files, args.out, prices, args.name, args.tie_margin, args.score_kind)
    except ImportFailure as err:
        return fail(str(err))
    print(f"wrote {summary['suite']}: {summary['queries']} queries x {len(summary['models'])} models "
          f"({', '.join(summary['models'])}); splits {summary['splits']}"
          + (f"; {summary['dropped']} prompts without every model left out" if summary["dropped"] else ""))
    if summary["no_output_tokens"]:
        print(f"note: {summary['no_output_tokens']} of {summary['rows']} rows give no output tokens (output_tokens, "
              "tokens or response): their answers are priced at the input alone unless the row has its own cost, "
              "so cost estimates and --max-cost-pct leave output prices out")
    print(f"next: tagrouter fit --suite {shlex.quote(str(args.out))} --out weights.json --no-topics "
          "(docs/QUICKSTART.md)")
    return 0


def add_parsers(sub) -> None:
    suite = sub.add_parser("suite", help="make a suite from one's own judged outcomes")
    verbs = suite.add_subparsers(dest="verb", required=True)
    imp = verbs.add_parser("import", help="turn evaluation outputs into a suite (suite.json + outcomes.jsonl)")
    imp.add_argument("--format", required=True, choices=["rows", "routerbench", "alpacaeval", "battles"],
                     help="rows: CSV/JSONL of prompt, model, score[, cost, input_tokens, output_tokens]; "
                          "routerbench: wide CSV; alpacaeval: annotation JSON; battles: prompt, model_a, model_b, winner")
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE")
    imp.add_argument("--out", required=True, type=output_path(folder=True), help="the suite folder to write")
    imp.add_argument("--prices", type=Path, help="CSV or JSON list of model, input_usd_per_mtok, output_usd_per_mtok "
                     "(or a JSON object: model -> {input_usd_per_mtok, output_usd_per_mtok})")
    imp.add_argument("--price", action="append", metavar="MODEL=IN,OUT", help="a model's price in USD per million "
                     "tokens (input, output); repeat per model")
    imp.add_argument("--name", help="suite name (default: the folder's name)")
    imp.add_argument("--tie-margin", type=float, default=0.0, help="two scores within it are a tie (default 0)")
    imp.add_argument("--score-kind", choices=["preference_vs_reference", "judge_1to10", "correctness"],
                     help="default by format (rows: judge_1to10, scores in [0, 1])")
    imp.set_defaults(func=cmd_import)
