"""`tagrouter eval`: every router fitted on a suite's train split, chosen on valid, reported on test."""
from __future__ import annotations

import time
from pathlib import Path

from tagrouter.cli.common import fail, load_suite_or_fail, output_path


def cmd_eval(args) -> int:
    from tagrouter.offline import evaluate
    from tagrouter.offline.prepare import configured_tagger
    from tagrouter.offline.report import format_table

    started = time.perf_counter()
    suite, error = load_suite_or_fail(args.suite, routable=True)
    if suite is None:
        return error
    try:
        if args.train_size is not None:
            from tagrouter.offline.suite import with_train_size

            suite = with_train_size(suite, args.train_size, args.seed)
        doc = evaluate.run(suite, configured_tagger(), args.out, args.plot, not args.quiet, started,
                           args.export_predictions)
    except ValueError as err:
        return fail(str(err))
    if not args.quiet:
        print(format_table(doc))
        print(f"wrote {args.out}{' and ' + str(args.plot) if args.plot else ''} in {doc['seconds']['total']:.1f} s")
    return 0


def add_parsers(sub) -> None:
    ev = sub.add_parser("eval", help="fit every router on train, choose on valid, report on test")
    ev.add_argument("--suite", required=True, type=Path, help="suite folder (suite.json + outcomes.jsonl)")
    ev.add_argument("--out", required=True, type=output_path(), help="RESULT.json")
    ev.add_argument("--plot", type=output_path(suffixes=(".png", ".svg", ".pdf")),
                    help="CURVE.png: AR against cost for every router and model")
    ev.add_argument("--export-predictions", type=output_path(), metavar="FILE",
                    help="JSON of every router's test scores, estimated costs and choices per knob point")
    ev.add_argument("--train-size", type=int, metavar="N",
                    help="fit on N train queries drawn at random (valid and test unchanged): small data")
    ev.add_argument("--seed", type=int, default=0, help="the draw of --train-size (default 0)")
    ev.add_argument("--quiet", action="store_true", help="no progress bars, no table")
    ev.set_defaults(func=cmd_eval)
