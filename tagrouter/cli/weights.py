"""`tagrouter fit` and `tagrouter calibrate`: weights from a suite's outcomes, and the knob for a budget."""
from __future__ import annotations

import json
import os
from pathlib import Path

from tagrouter.cli.common import add_suite_arguments, eval_tagger, fail, load_suite_or_fail, output_path


def cmd_fit(args) -> int:
    from tagrouter.core.scoring import ScoringParams
    from tagrouter.offline.fit import fit_counts, weights_from_counts

    if not args.out and not args.scorer:
        return fail("say where the weights go: --out FILE and/or --scorer ADDR")
    if args.add:
        return _fit_add(args)
    suite, error = load_suite_or_fail(args.suite, routable=not args.no_tune)
    if suite is None:
        return error
    tagger = eval_tagger()
    vocabulary = tagger.vocabulary
    calibration = None
    if args.no_tune:
        tagged = tagger.tag_many(suite.queries)
        query_tags = [[name for name, _, _ in t.tags] for t in tagged]
        params, setting = ScoringParams(), "default parameters"
    else:
        choice, calibration = _choose(suite, tagger, args)
        params, setting = choice.params, f"chosen on valid + train out-of-fold (AUC {choice.result.selection_auc:.4f})"
        query_tags = [[name for name, _ in q] for q in choice.tags]
        vocabulary = _vocabulary_with_topics(vocabulary, choice, suite, args)
    counts = fit_counts(suite, query_tags, args.split)
    provenance = (f"tagrouter fit --suite {suite.name} (split {args.split}: {len(suite.rows(args.split))} queries, "
                  f"{len(suite.models)} models; {setting}); vocabulary {vocabulary.version}, {tagger.kind}")
    weights = weights_from_counts(suite, counts, params, provenance, calibration)
    if calibration is not None:
        p = calibration.recommended
        print(f"recommended operating point: cost_weight {p.cost_weight:.6g}, quality_margin {p.quality_margin:.6g} "
              f"({p.cost_pct:.1f}% of the priciest model's cost, {p.quality_pct:.1f}% of the best model's accept "
              f"rate on the selection rows; {len(calibration.points)} calibration points)")
    return _emit_weights(weights, args)


def _choose(suite, tagger, args):
    """TagRouter's settings chosen as `tagrouter eval` chooses them (a TagRouterChoice), and the knob's
    calibration at that setting on the same selection rows."""
    from tagrouter.offline import selection
    from tagrouter.offline.operating_points import calibration_table
    from tagrouter.offline.prepare import prepare
    from tagrouter.offline.routers.tag_router import TOPIC_GRANULARITIES, TagRouter

    prep = prepare(suite, tagger, show_progress=not args.quiet)
    router = TagRouter(granularities=((),) if args.no_topics else TOPIC_GRANULARITIES, parsimony=args.parsimony)
    folds = selection.cv_folds(prep)
    choice = router.choose(prep, folds)
    return choice, calibration_table(prep, router, choice.result.setting, folds)


def _vocabulary_with_topics(vocabulary, choice, suite, args):
    """The served vocabulary plus the chosen suite-fitted topics, saved where the scorer's tagger finds it."""
    had_groups = bool(vocabulary.groups)
    vocabulary = vocabulary.without_groups()
    if choice.topics is not None:
        vocabulary = vocabulary.with_topics(choice.topics.centroids, suite.name)
        vocab_out = args.vocab_out or Path("build") / "vocabulary" / suite.name
        vocabulary.save(Path(vocab_out))
        print(f"wrote {vocab_out}: the vocabulary with topic tags at granularities "
              f"{', '.join(map(str, choice.topics.centroids))}; serve it with TAGROUTER_VOCAB_DIR={vocab_out}")
    elif had_groups:
        print("note: no topic tags were chosen; serve with the hand vocabulary (TAGROUTER_VOCAB_DIR unset)")
    return vocabulary


def _fit_add(args) -> int:
    from tagrouter.core.weights import ModelPrice, Weights, WeightsError
    from tagrouter.offline.fit import fit_added_model, merge_counts

    if not args.weights:
        return fail("--add needs --weights FILE: the weights the model joins")
    try:
        weights = Weights.load(args.weights)
    except WeightsError as err:
        return fail(str(err))
    suite, error = load_suite_or_fail(args.suite)
    if suite is None:
        return error
    tagged = eval_tagger().tag_many(suite.queries)  # the served vocabulary: the new counts must use the served tags
    try:
        extra = fit_added_model(suite, [[n for n, _, _ in t.tags] for t in tagged], weights.model_names, args.add,
                                args.split)
    except ValueError as err:
        return fail(str(err))
    info = next(m for m in suite.models if m.name == args.add)
    joined = Weights(models=[*weights.models, ModelPrice(info.name, info.input_usd_per_mtok, info.output_usd_per_mtok)],
                     params=weights.params, counts=merge_counts(weights.counts, extra),
                     provenance=f"{weights.provenance}; + {args.add} (tagrouter fit --add, suite {suite.name}, "
                                f"split {args.split})")
    if weights.calibration is not None:  # its percentages and recommended point were the old pool's
        print(f"note: the calibration table of {args.weights} (max_cost_pct, min_quality_pct and the recommended "
              f"default) was measured without {args.add} and is left out: requests need a raw --cost-weight until "
              "`tagrouter fit` on a suite with the whole pool makes a new one")
    return _emit_weights(joined, args)


def _emit_weights(weights, args) -> int:
    if args.out:
        weights.save(Path(args.out))
        print(f"wrote {args.out}: {len(weights.counts)} tags x {len(weights.models)} models, version {weights.version}")
    if args.scorer:
        import grpc

        from services.common.security import bearer
        from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc

        token = os.environ.get("TAGROUTER_ADMIN_TOKEN", "").strip()
        with grpc.insecure_channel(args.scorer) as channel:
            try:
                reply = scorer_pb2_grpc.ScorerServiceStub(channel).LoadWeights(
                    scorer_pb2.LoadWeightsRequest(weights=weights.to_proto()), timeout=60,
                    metadata=bearer(token) if token else None)
            except grpc.RpcError as err:
                return fail(f"loading into the scorer at {args.scorer} failed: {err.code().name}: {err.details()}", 1)
        print(f"loaded into the scorer at {args.scorer}: version {reply.version}")
    return 0


def cmd_calibrate(args) -> int:
    from tagrouter.core.weights import Weights, WeightsError
    from tagrouter.offline.calibration import calibrate

    pct, share = args.target_cost_pct, args.target_top_share
    if pct is not None and not 0 < pct <= 100:
        return fail(f"--target-cost-pct must be in (0, 100], not {pct}")
    if share is not None and not 0 <= share <= 1:
        return fail(f"--target-top-share must be in [0, 1], not {share}")
    suite, error = load_suite_or_fail(args.suite)
    if suite is None:
        return error
    try:
        weights = Weights.load(args.weights or _default_weights())
        result = calibrate(suite, weights, eval_tagger(), split=args.split, target_cost_pct=pct, target_top_share=share)
    except (WeightsError, ValueError) as err:
        return fail(str(err))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"cost_weight {result['cost_weight']:.6g}: on {args.split}, {result['cost_pct']:.1f}% of the most "
              f"expensive model's cost, {100 * result['top_share']:.1f}% of queries to {result['top_model']}, "
              f"AR {result['ar']:.4f}{'' if result['met'] else '  (TARGET NOT MET: the cheapest setting)'}")
        print(f"use it: tagrouter route TEXT --cost-weight {result['cost_weight']:.6g}  (or TAGROUTER_COST_WEIGHT)")
    return 0 if result["met"] else 1


def cmd_operating_points(args) -> int:
    from tagrouter.core.operating import check_pct
    from tagrouter.core.weights import Weights, WeightsError
    from tagrouter.offline.calibration import served_points

    try:
        for p in args.max_cost_pct:
            check_pct("--max-cost-pct", p, low_open=True)
        for q in args.min_quality_pct:
            check_pct("--min-quality-pct", q, low_open=False)
    except ValueError as err:
        return fail(str(err))
    suite, error = load_suite_or_fail(args.suite)
    if suite is None:
        return error
    try:
        weights = Weights.load(args.weights or _default_weights())
        result = served_points(suite, weights, eval_tagger(), args.split, args.max_cost_pct, args.min_quality_pct)
    except (WeightsError, ValueError) as err:
        return fail(str(err))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"suite {result['suite']}, split {result['split']} ({result['queries']} queries), weights "
          f"{result['weights_version']}; cost as % of always {result['top_model']}, AR as % of the best single model's")
    print(f"{'knob':<22} {'cost_weight':>11} {'margin':>7} | {'fit rows: cost%':>15} {'AR%':>6} | "
          f"{result['split'] + ': cost%':>13} {'AR':>6} {'AR%':>6} {'models':>6}")
    for p in result["points"]:
        knob = p["knob"] if p["target"] is None else f"{p['knob']} {p['target']:g}"
        print(f"{knob:<22} {p['cost_weight']:>11.4g} {p['quality_margin']:>7.3g} | {p['selection_cost_pct']:>15.1f} "
              f"{p['selection_quality_pct']:>6.1f} | {p['cost_pct']:>13.1f} {p['ar']:>6.3f} {p['quality_pct']:>6.1f} "
              f"{p['models_used']:>6}")
    return 0


def _default_weights() -> Path:
    from services.common.settings import TaggerSettings
    from tagrouter import data

    return Path(os.environ.get("TAGROUTER_WEIGHTS_FILE", "").strip()
                or data.starter_weights(heads=TaggerSettings.from_env().use_heads))


def add_parsers(sub) -> None:
    fit = sub.add_parser("fit", help="count a suite's outcomes per (tag, model) into weights")
    add_suite_arguments(fit)
    fit.add_argument("--out", type=output_path(), help="write the weights to this JSON file")
    fit.add_argument("--scorer", help="load the weights into the scorer at host:port")
    fit.add_argument("--no-tune", action="store_true",
                     help="default scoring parameters and the tagger's own tags (no choice on valid)")
    fit.add_argument("--no-topics", action="store_true", help="choose parameters on valid, but no suite-fitted topic tags")
    fit.add_argument("--parsimony", action="store_true",
                     help="also the one-standard-error rule toward the smallest tag set (off in `tagrouter eval`; "
                          "the starter weights use it: docs/ROUTING-CHOICES.md)")
    fit.add_argument("--vocab-out", type=output_path(folder=True), help="where the vocabulary with topic tags goes "
                     "(default build/vocabulary/SUITE)")
    fit.add_argument("--add", metavar="MODEL", help="add MODEL's outcomes (rows in --suite) to --weights")
    fit.add_argument("--weights", type=Path, help="with --add: the weights the model joins")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.set_defaults(func=cmd_fit)

    cal = sub.add_parser("calibrate", help="the cost knob that meets a budget on the suite's valid split")
    cal.add_argument("--suite", required=True, type=Path, help="suite folder (suite.json + outcomes.jsonl)")
    target = cal.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-cost-pct", type=float, metavar="P",
                        help="spend at most P%% of what sending every query to the most expensive model costs")
    target.add_argument("--target-top-share", type=float, metavar="S",
                        help="send at most this share (0-1) of queries to the most expensive model")
    cal.add_argument("--weights", type=Path, help="the served weights (default $TAGROUTER_WEIGHTS_FILE or the starter)")
    cal.add_argument("--split", default="valid", choices=["train", "valid", "test"])
    cal.add_argument("--json", action="store_true", help="print one JSON object")
    cal.set_defaults(func=cmd_calibrate)

    ops = sub.add_parser("operating-points", help="what the weights' stored calibration (recommended point, "
                         "--max-cost-pct, --min-quality-pct) gives on a suite's split")
    ops.add_argument("--suite", required=True, type=Path, help="suite folder (suite.json + outcomes.jsonl)")
    ops.add_argument("--weights", type=Path, help="the served weights (default $TAGROUTER_WEIGHTS_FILE or the starter)")
    ops.add_argument("--split", default="test", choices=["train", "valid", "test"])
    ops.add_argument("--max-cost-pct", type=float, nargs="*", default=[], metavar="P",
                     help="cost caps, as a Route's max_cost_pct")
    ops.add_argument("--min-quality-pct", type=float, nargs="*", default=[], metavar="Q",
                     help="accept-rate floors, as a Route's min_quality_pct")
    ops.add_argument("--json", action="store_true", help="print one JSON object")
    ops.set_defaults(func=cmd_operating_points)
