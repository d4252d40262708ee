"""What `tagrouter simulate` streams, and the choice of the pace controller's constants on VALID.

A stream is one split of a suite in an order (`shuffled`, or `drift`: the cheaper half of the
queries first, by the priciest model's cost, then the pricier half, each half shuffled). Its
budget is P% of what always sending it to the priciest model (list price) costs, from the
suite's own per-query costs. The weights are fitted on train with the default scoring
parameters (`tagrouter fit --no-tune`), cached in build/simulate/.

`python -m tagrouter.offline.pacing --suites DIR` replays every suite's VALID streams offline
through the same maths the router runs (`decision`, `tenancy.pace_*`, `tenancy.affordable`) for
a grid of pacing and margin constants and prints the best: that is how PACE_RECENT, PACE_AIM,
PACE_LEAD and MARGIN_DECAY in tagrouter/core/tenancy.py were chosen (never on test). Each VALID
split streams in TUNE_SEEDS orders (shuffle seeds 0.., seed 0 being the order `tagrouter simulate`
uses), so a choice rests on more than one draw of a small split. A small suite's VALID split is
half as long as its test stream, and a margin goes wrong later in a longer stream, so it then
replays the chosen constants on design streams too (`design_routings`: train cut in halves, weights
fitted on one half, the other half streamed; no test row is read), with the margin's overshoot
bound and without it: that is how the margin rule (tenancy.Margin) was chosen.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import sys
import time
from pathlib import Path

import numpy as np

from tagrouter.core import decision, tenancy
from tagrouter.offline.suite import Suite, load_suite, suite_folders

ORDERS = ("shuffled", "drift")
CACHE_DIR = Path("build") / "simulate"
MAX_TUNE_SECONDS = 1800.0
TUNE_SEEDS = 12
DESIGN_CUTS, DESIGN_SEEDS = 2, 3  # train halvings per suite, stream orders per streamed half and budget


def top_model(weights) -> int:
    """The priciest model of the weights (list price), as `tagrouter calibrate` takes it."""
    return int(np.argmax([m.input_usd_per_mtok + m.output_usd_per_mtok for m in weights.models]))


def columns(suite: Suite, weights) -> list[int]:
    missing = [m for m in weights.model_names if m not in suite.model_names]
    if missing:
        raise ValueError(f"{suite.path}: the suite has no rows for model {missing[0]!r} of the weights")
    return [suite.model_names.index(m) for m in weights.model_names]


def stream_rows(suite: Suite, split: str, order: str, weights, seed: int = 0) -> np.ndarray:
    """The suite's row indices of `split` in the order streamed."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    rng = np.random.default_rng(seed)
    rows = rng.permutation(suite.rows(split))
    if order == "drift":  # cheap first: the cost profile changes half-way
        pricey = suite.costs[rows, columns(suite, weights)[top_model(weights)]]
        ranked = rows[np.argsort(pricey, kind="stable")]
        half = len(ranked) // 2
        rows = np.concatenate([rng.permutation(ranked[:half]), rng.permutation(ranked[half:])])
    return rows


def budget_usd(suite: Suite, rows: np.ndarray, weights, pct: float) -> float:
    if not 0 < pct <= 100:
        raise ValueError(f"--budget-pct must be in (0, 100], not {pct}")
    return float(pct / 100 * suite.costs[rows, columns(suite, weights)[top_model(weights)]].sum())


def serving_weights(suite: Suite, tagger, cache_dir: Path | None = None):
    """Weights fitted on train with the default parameters (cached per suite and vocabulary)."""
    from tagrouter.core.scoring import ScoringParams
    from tagrouter.core.weights import Weights
    from tagrouter.offline.fit import fit_counts, weights_from_counts

    version = tagger.vocabulary.without_groups().version
    path = Path(cache_dir or CACHE_DIR) / f"{suite.name}.{version}.weights.json"
    if path.is_file():
        return Weights.load(path), path
    tagged = tagger.tag_many(suite.queries)
    counts = fit_counts(suite, [[name for name, _, _ in t.tags] for t in tagged], "train")
    weights = weights_from_counts(suite, counts, ScoringParams(), f"tagrouter simulate: fit --suite {suite.name} "
                                  f"--no-tune (split train); vocabulary {version}")
    path.parent.mkdir(parents=True, exist_ok=True)
    weights.save(path)
    return weights, path


def replay(routing, positions: np.ndarray, budget: float, mode: str = "pace", recent: int = tenancy.PACE_RECENT,
           aim: float = tenancy.PACE_AIM, decay: float = tenancy.MARGIN_DECAY, downgrade_at_pct: float = 80.0,
           lead: float = tenancy.PACE_LEAD, overshoot_bound: bool = True) -> dict:
    """One budget mode offline on a SplitRouting (calibration.split_routing): the router's maths for one
    tenant with one budget window (base cost weight 0), each request reserved as its estimate plus the
    margin and settled at once with its true cost, which then moves the margin (without its overshoot
    bound when `overshoot_bound` is False: the ratio alone, as before tenancy.Margin had it)."""
    cap = tenancy.to_nano(budget)
    spend, estimated, margin, accepted, refused = 0, 0, tenancy.Margin(), 0, 0
    samples: list[tenancy.PaceSample] = []
    n = len(positions)
    for i, q in enumerate(positions):
        now = (i + 0.5) / n
        est = routing.estimated[q]
        nano = [tenancy.to_nano(float(c)) for c in est]
        state = tenancy.WindowState(tenancy.Budget("day", budget), 0, 1, spend, 0)
        weight, scale, ceiling = 0.0, routing.cost_scale_usd, None
        if mode == "pace":
            paced = tenancy.pace_weight(samples[:recent], [state], [estimated], now, margin, aim, lead)
            weight, scale = paced if paced is not None else (0.0, scale)
        elif mode == "downgrade" and 100 * spend / cap >= downgrade_at_pct:
            ceiling = min(nano)
        allowed = np.array(tenancy.affordable(nano, [state], ceiling, margin))
        utility = decision.utilities(routing.predicted[q], est, weight, scale)
        if mode != "hard":
            utility = np.where(allowed, utility, -np.inf)
        chosen = int(decision.best_of(utility, est))
        if not allowed.any() or not allowed[chosen]:
            refused += 1
            continue
        if mode == "pace":  # Route remembers what it reserved
            samples.insert(0, tenancy.PaceSample(now, tuple(decision.utilities(routing.predicted[q], est, 0.0)),
                                                 tuple(nano)))
        actual = tenancy.to_nano(float(routing.true_costs[q, chosen]))
        spend += actual
        estimated += nano[chosen]
        margin = margin.after(nano[chosen], actual, decay)
        if not overshoot_bound:
            margin = tenancy.Margin(margin.factor)
        accepted += bool(routing.accept[q, chosen])
    return {"spend_pct": 100 * spend / cap, "accept_rate": accepted / n, "refused": refused}


GRID = {"recent": (16, 32, 64), "aim": (0.99, 0.995, 1.0), "lead": (0, 6, 7, 8, 10), "decay": (1.0,)}


def measure(routings: list, recent: int, aim: float, lead: float, decay: float, overshoot_bound: bool = True,
            others: dict | None = None) -> dict:
    """One point over the streams: how many land in [97%, 100%] of the budget, how many cross it (pace,
    hard or downgrade), on how many pace's accept rate is at least downgrade's and hard's, the mean
    accept rate. `others` caches hard's and downgrade's replays (they depend on the margin rule only)."""
    others = {} if others is None else others
    key = (decay, overshoot_bound)
    if key not in others:
        others[key] = [[replay(r, pos, b, mode, decay=decay, overshoot_bound=overshoot_bound)
                        for mode in ("downgrade", "hard")] for r, pos, b in routings]
    runs = [replay(r, pos, b, "pace", recent, aim, decay, lead=lead, overshoot_bound=overshoot_bound)
            for r, pos, b in routings]
    spends = [x["spend_pct"] for x in runs]
    return {"recent": recent, "aim": aim, "lead": lead, "decay": decay, "overshoot_bound": overshoot_bound,
            "within": sum(97 <= s <= 100 for s in spends), "crossed": sum(s > 100 for s in spends),
            "crossed_others": sum(y["spend_pct"] > 100 for ys in others[key] for y in ys),
            "beats": sum(x["accept_rate"] >= max(y["accept_rate"] for y in ys) for x, ys in zip(runs, others[key])),
            "min_spend_pct": min(spends), "max_spend_pct": max(spends),
            "accept_rate": float(np.mean([x["accept_rate"] for x in runs]))}


def tune(routings: list[tuple[object, np.ndarray, float]], deadline: float) -> list[dict]:
    """Every grid point over the VALID streams (`measure`), best first."""
    out, others = [], {}
    for recent, aim, lead, decay in itertools.product(*GRID.values()):
        if time.monotonic() > deadline:
            break
        out.append(measure(routings, recent, aim, lead, decay, others=others))
    return sorted(out, key=lambda x: (x["crossed"] + x["crossed_others"], -x["within"], -x["beats"],
                                      -x["accept_rate"]))


def streams(suite: Suite, weights, routing, split: str, seeds: int, pcts: list[float]) -> list:
    """(routing, positions in it, budget) for each order, seed and budget of one split."""
    position = {int(r): i for i, r in enumerate(routing.rows)}
    out = []
    for seed, order, pct in itertools.product(range(seeds), ORDERS, pcts):
        rows = stream_rows(suite, split, order, weights, seed)
        out.append((routing, np.array([position[int(r)] for r in rows]), budget_usd(suite, rows, weights, pct)))
    return out


def design_routings(suite: Suite, tagger, pcts: list[float], seeds: int = DESIGN_SEEDS,
                    cuts: int = DESIGN_CUTS) -> list:
    """Streams of rows no weights were fitted on, as long as a test stream or longer, from train only:
    per cut, train's rows in a seeded order halved, weights fitted on the first half (`serving_weights`),
    the second half streamed in every order and budget."""
    from tagrouter.offline.calibration import split_routing

    out = []
    train = suite.rows("train")
    for cut in range(cuts):
        order = np.random.default_rng(1000 + cut).permutation(train)
        half = len(order) // 2
        halved = dataclasses.replace(suite, name=f"{suite.name}.train-half{cut}",
                                     splits={"train": np.sort(order[:half]), "valid": np.sort(order[half:])})
        weights, _ = serving_weights(halved, tagger)
        out += streams(halved, weights, split_routing(halved, weights, tagger, "valid"), "valid", seeds, pcts)
    return out


def line(x: dict) -> str:
    return (f"recent {x['recent']:<3} aim {x['aim']:<6g} lead {x['lead']:<3g} decay {x['decay']:<5g} "
            f"overshoot {'on ' if x['overshoot_bound'] else 'off'} crossed {x['crossed']:>2} "
            f"others {x['crossed_others']:>2} "
            f"within {x['within']:>3} beats {x['beats']:>3} spend {x['min_spend_pct']:.1f}..{x['max_spend_pct']:.1f}% "
            f"AR {x['accept_rate']:.4f}")


def main(argv=None) -> int:
    from tagrouter.offline.calibration import split_routing
    from tagrouter.offline.prepare import configured_tagger

    parser = argparse.ArgumentParser(description="choose the pace controller's constants on VALID streams, "
                                                 "and the margin rule on VALID and train's design streams")
    parser.add_argument("--suites", type=Path, required=True)
    parser.add_argument("--budget-pct", type=float, nargs="+", default=[30.0, 60.0])
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=TUNE_SEEDS, help="stream orders per split and budget")
    parser.add_argument("--design-seeds", type=int, default=DESIGN_SEEDS,
                        help="stream orders per design half and budget (0: no design streams)")
    args = parser.parse_args(argv)
    tagger = configured_tagger()
    routings, design = [], []
    for folder in suite_folders(args.suites):
        suite = load_suite(folder)
        weights, _ = serving_weights(suite, tagger)
        routings += streams(suite, weights, split_routing(suite, weights, tagger, "valid"), "valid", args.seeds,
                            args.budget_pct)
        if args.design_seeds > 0:
            design += design_routings(suite, tagger, args.budget_pct, args.design_seeds)
    ranked = tune(routings, time.monotonic() + MAX_TUNE_SECONDS)
    print(f"{len(routings)} valid streams; best first (pace crossed, hard+downgrade crossed, within [97%, 100%], "
          "AR >= downgrade's and hard's, spend range, accept rate)")
    for x in ranked[:args.top]:
        print(line(x))
    served = (tenancy.PACE_RECENT, tenancy.PACE_AIM, tenancy.PACE_LEAD, tenancy.MARGIN_DECAY)
    print(f"\nthe served constants, the margin with and without its overshoot bound, on the {len(routings)} valid "
          f"streams and the {len(design)} design streams (train halves)")
    for name, chosen in (("valid", routings), ("design", design)):
        if chosen:
            others: dict = {}
            for bound in (True, False):
                print(f"{name:<6} " + line(measure(chosen, *served, overshoot_bound=bound, others=others)))
    return 0 if ranked and math.isfinite(ranked[0]["accept_rate"]) else 1


if __name__ == "__main__":
    sys.exit(main())
