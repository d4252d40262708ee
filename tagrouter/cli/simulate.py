"""`tagrouter simulate`: a suite's test queries through a real router as one tenant per budget mode."""
from __future__ import annotations

import json
from pathlib import Path

from tagrouter.cli.common import bounded, fail, load_suite_or_fail, output_path


def cmd_simulate(args) -> int:
    from tagrouter.core.weights import Weights, WeightsError
    from tagrouter.offline.pacing import ORDERS
    from tagrouter.offline.simulate import Run, format_result, simulate

    if not 0 < args.budget_pct <= 100:
        return fail(f"--budget-pct must be in (0, 100], not {args.budget_pct}")
    if args.order not in ORDERS:
        return fail(f"--order must be one of {', '.join(ORDERS)}")
    suite, error = load_suite_or_fail(args.suite, routable=True)
    if suite is None:
        return error
    weights = None
    if args.weights:
        try:
            weights = Weights.load(args.weights)
        except WeightsError as err:
            return fail(str(err))
    try:
        [result] = simulate(suite, [Run(args.budget_pct, args.order, args.split, args.seed)], weights=weights,
                            weights_path=args.weights, max_seconds=args.max_seconds)
    except (ValueError, TimeoutError) as err:
        return fail(str(err), 1)
    print(format_result(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("simulate", help="stream a suite's test queries through a real router as one tenant per "
                       "budget mode (pace, downgrade, hard, the calibrated fixed weight); spend and accept rate")
    p.add_argument("--suite", required=True, type=Path, help="suite folder (suite.json + outcomes.jsonl)")
    p.add_argument("--budget-pct", required=True, type=float, metavar="P",
                   help="the budget: P%% of what always using the priciest model costs over the stream")
    p.add_argument("--order", default="shuffled", help="shuffled, or drift (the cheaper half of the queries first)")
    p.add_argument("--split", default="test", choices=["valid", "test"], help="the rows streamed (default test)")
    p.add_argument("--seed", type=int, default=0, help="the order's seed")
    p.add_argument("--weights", type=Path, help="serve these weights (default: fitted on train, default parameters)")
    p.add_argument("--max-seconds", type=bounded(float, 0, strict=True), default=3600.0,
                   help="give up after this long (default 3600)")
    p.add_argument("--out", type=output_path(), help="write the result (SIM.json) here")
    p.set_defaults(func=cmd_simulate)
