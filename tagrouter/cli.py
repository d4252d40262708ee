"""`tagrouter`: serve the services, route a query, fit weights, build the vocabulary, tag text."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

DEFAULT_ROUTER_ADDR = "127.0.0.1:50051"


def _fail(message: str, code: int = 2) -> int:
    print(f"tagrouter: error: {message}", file=sys.stderr)
    return code


# --- serve ---------------------------------------------------------------------------------
SERVE_PORTS = {"router": 50051, "scorer": 50052, "tagger": 50053}


def _route_request(args):
    from tagrouter.router.v1 import router_pb2

    request = router_pb2.RouteRequest(query=args.text, candidate_models=args.candidates or [],
                                      client_tags=getattr(args, "client_tags", None) or [])
    if args.cost_weight is not None:
        request.cost_weight = args.cost_weight
    if getattr(args, "quality_margin", None) is not None:
        request.quality_margin = args.quality_margin
    return request


async def _call_route(address: str, request, timeout: float):
    import grpc

    from tagrouter.router.v1 import router_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        return await router_pb2_grpc.RouterServiceStub(channel).Route(request, timeout=timeout)


def _print_route(response, as_json: bool) -> None:
    from google.protobuf.json_format import MessageToDict

    doc = MessageToDict(response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    if as_json:
        print(json.dumps(doc))
        return
    print(f"model: {doc['model']}  (estimated cost ${doc['estimated_cost_usd']:.6f}"
          f"{', DEGRADED: ' + doc['degraded_reason'] if doc['degraded'] else ''})")
    print("tags:   " + ", ".join(f"{t['name']} {t['score']:.2f}" for t in doc["tags"]))
    for s in sorted(doc["scores"], key=lambda s: -s["score"]):
        print(f"  {s['model']:<40} score {s['score']:.3f}  cost ${s['estimated_cost_usd']:.6f}")
    why = doc.get("explanation") or {}
    if why.get("summary"):
        print("why:    " + why["summary"])


def cmd_serve(args) -> int:
    """One service in this process (as `python -m services.NAME`), or all three through the launcher."""
    if args.service != "all":
        flags = []
        if args.port is not None:
            flags += ["--port", str(args.port)]
        if args.service == "router":
            flags += [f for opt, v in (("--tagger-addr", args.tagger_addr), ("--scorer-addr", args.scorer_addr))
                      if v for f in (opt, v)]
        return subprocess.call([sys.executable, "-m", f"services.{args.service}", *flags])
    from tagrouter.stack import LocalStack

    ports = {"router": SERVE_PORTS["router"] if args.port is None else args.port,
             "scorer": args.scorer_port, "tagger": args.tagger_port}
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        with LocalStack(ports=ports, metrics=True) as stack:
            if args.sample:
                response = asyncio.run(_call_route(stack.router, _route_request(args.sample_args), 10))
                print(f"\nTagRouter is up: router on {stack.router}. Sample route for {args.sample!r}:")
                _print_route(response, as_json=True)
                print('Try: .venv/bin/tagrouter route "your query" --json   (Ctrl-C stops the stack)', flush=True)
            print("metrics: " + ", ".join(f"{n} {u}" for n, u in stack.metrics_urls.items()) + "\n", flush=True)
            while not stopping.is_set() and all(p.proc.poll() is None for p in stack.processes.values()):
                stopping.wait(0.5)
            exited = [n for n, p in stack.processes.items() if p.proc.poll() is not None]
    except (RuntimeError, TimeoutError) as err:
        return _fail(f"the stack did not start: {err}", 1)
    if exited and not stopping.is_set():
        return _fail(f"{', '.join(exited)} exited; the stack is stopped", 1)
    return 0


# --- route ---------------------------------------------------------------------------------
def cmd_route(args) -> int:
    import grpc

    if not args.text.strip():
        return _fail("the query is empty")
    request = _route_request(args)
    if args.embedded:
        response = asyncio.run(_route_embedded(request))
    else:
        try:
            response = asyncio.run(_call_route(args.router, request, args.timeout))
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNAVAILABLE:
                return _fail(f"no router answers at {args.router} ({err.details()}); start one with `make run`, "
                             "or use --embedded", 1)
            return _fail(f"{err.code().name}: {err.details()}", 1)
    _print_route(response, args.json)
    return 0


async def _route_embedded(request):
    """The whole path on this machine: private Redis, tagger, scorer and router on free ports."""
    from tagrouter.stack import LocalStack

    env = dict(os.environ, TAGROUTER_LOG_LEVEL="WARNING", TAGROUTER_METRICS_PORT="0")
    with LocalStack(env=env, quiet=True) as stack:
        return await _call_route(stack.router, request, 10)


# --- fit -----------------------------------------------------------------------------------
def _load_suite_or_fail(path):
    from tagrouter.offline.suite import SuiteError, load_suite

    try:
        return load_suite(path), None
    except SuiteError as err:
        return None, _fail(str(err))


def _eval_tagger():
    """The tagger as configured, with both cores for offline embedding."""
    from dataclasses import replace

    from services.common.settings import TaggerSettings
    from services.tagger.app import load_tagger

    settings = TaggerSettings.from_env()
    return load_tagger(replace(settings, intra_op_threads=max(settings.intra_op_threads, os.cpu_count() or 1)))


def cmd_fit(args) -> int:
    from tagrouter.core.scoring import ScoringParams
    from tagrouter.offline.fit import fit_counts, weights_from_counts

    if not args.out and not args.scorer:
        return _fail("say where the weights go: --out FILE and/or --scorer ADDR")
    if args.add:
        return _fit_add(args)
    suite, error = _load_suite_or_fail(args.suite)
    if suite is None:
        return error
    tagger = _eval_tagger()
    vocabulary = tagger.vocabulary
    if args.no_tune:
        tagged = tagger.tag_many(suite.queries)
        query_tags = [[name for name, _, _ in t.tags] for t in tagged]
        params, setting = ScoringParams(), "default parameters"
    else:
        from tagrouter.offline import evaluate as ev

        prep = ev.prepare(suite, tagger, show_progress=not args.quiet)
        granularities = ((),) if args.no_topics else ev.TOPIC_GRANULARITIES
        choice = ev.select_tagrouter(prep, granularities=granularities)
        params, setting = choice.params, f"chosen on valid + train out-of-fold (AUC {choice.result.selection_auc:.4f})"
        query_tags = [[name for name, _ in q] for q in choice.tags]
        vocabulary = vocabulary.without_groups()
        if choice.topics is not None:
            vocabulary = vocabulary.with_topics(choice.topics.centroids, suite.name)
            vocab_out = args.vocab_out or Path("build") / "vocabulary" / suite.name
            vocabulary.save(Path(vocab_out))
            print(f"wrote {vocab_out}: the vocabulary with topic tags at granularities "
                  f"{', '.join(map(str, choice.topics.centroids))}; serve it with TAGROUTER_VOCAB_DIR={vocab_out}")
        elif tagger.vocabulary.groups:
            print("note: no topic tags were chosen; serve with the hand vocabulary (TAGROUTER_VOCAB_DIR unset)")
    counts = fit_counts(suite, query_tags, args.split)
    provenance = (f"tagrouter fit --suite {suite.name} (split {args.split}: {len(suite.rows(args.split))} queries, "
                  f"{len(suite.models)} models; {setting}); vocabulary {vocabulary.version}")
    weights = weights_from_counts(suite, counts, params, provenance)
    return _emit_weights(weights, args)


def _fit_add(args) -> int:
    from tagrouter.core.weights import ModelPrice, Weights, WeightsError
    from tagrouter.offline.fit import fit_added_model, merge_counts

    if not args.weights:
        return _fail("--add needs --weights FILE: the weights the model joins")
    try:
        weights = Weights.load(args.weights)
    except WeightsError as err:
        return _fail(str(err))
    suite, error = _load_suite_or_fail(args.suite)
    if suite is None:
        return error
    tagger = _eval_tagger()  # the served vocabulary: the new counts must use the served tags
    tagged = tagger.tag_many(suite.queries)
    try:
        extra = fit_added_model(suite, [[n for n, _, _ in t.tags] for t in tagged], weights.model_names, args.add,
                                args.split)
    except ValueError as err:
        return _fail(str(err))
    info = next(m for m in suite.models if m.name == args.add)
    joined = Weights(models=[*weights.models, ModelPrice(info.name, info.input_usd_per_mtok, info.output_usd_per_mtok)],
                     params=weights.params, counts=merge_counts(weights.counts, extra),
                     provenance=f"{weights.provenance}; + {args.add} (tagrouter fit --add, suite {suite.name}, "
                                f"split {args.split})")
    return _emit_weights(joined, args)


def _emit_weights(weights, args) -> int:
    counts = weights.counts
    if args.out:
        weights.save(Path(args.out))
        print(f"wrote {args.out}: {len(counts)} tags x {len(weights.models)} models, version {weights.version}")
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
                return _fail(f"loading into the scorer at {args.scorer} failed: {err.code().name}: {err.details()}", 1)
        print(f"loaded into the scorer at {args.scorer}: version {reply.version}")
    return 0


# --- eval, calibrate -----------------------------------------------------------------------
def cmd_eval(args) -> int:
    import time

    from tagrouter.offline import evaluate as ev

    started = time.perf_counter()
    suite, error = _load_suite_or_fail(args.suite)
    if suite is None:
        return error
    tagger = _eval_tagger()
    prep = ev.prepare(suite, tagger, show_progress=not args.quiet)
    try:
        doc = ev.evaluate(prep, show_progress=not args.quiet)
    except ValueError as err:
        return _fail(str(err))
    doc["must_show"] = ev.must_show(doc)
    doc["seconds"] = {"embedding": round(prep.seconds_embedding, 2), "total": round(time.perf_counter() - started, 2)}
    doc = ev.clean_nans(doc)
    ev.write_result(doc, args.out)
    if args.plot:
        ev.plot(doc, args.plot)
    if not args.quiet:
        print(ev.format_table(doc))
        print(f"wrote {args.out}{' and ' + str(args.plot) if args.plot else ''} in {doc['seconds']['total']:.1f} s")
    return 0


def cmd_calibrate(args) -> int:
    from tagrouter.core.weights import Weights, WeightsError
    from tagrouter.offline import evaluate as ev

    pct, share = args.target_cost_pct, args.target_top_share
    if pct is not None and not 0 < pct <= 100:
        return _fail(f"--target-cost-pct must be in (0, 100], not {pct}")
    if share is not None and not 0 <= share <= 1:
        return _fail(f"--target-top-share must be in [0, 1], not {share}")
    suite, error = _load_suite_or_fail(args.suite)
    if suite is None:
        return error
    path = args.weights or _default_weights()
    try:
        weights = Weights.load(path)
        result = ev.calibrate(suite, weights, _eval_tagger(), split=args.split, target_cost_pct=pct,
                              target_top_share=share)
    except (WeightsError, ValueError) as err:
        return _fail(str(err))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"cost_weight {result['cost_weight']:.6g}: on {args.split}, {result['cost_pct']:.1f}% of the most "
              f"expensive model's cost, {100 * result['top_share']:.1f}% of queries to {result['top_model']}, "
              f"AR {result['ar']:.4f}{'' if result['met'] else '  (TARGET NOT MET: the cheapest setting)'}")
        print(f"use it: tagrouter route TEXT --cost-weight {result['cost_weight']:.6g}  (or TAGROUTER_COST_WEIGHT)")
    return 0 if result["met"] else 1


def _default_weights() -> Path:
    from services.common.settings import DEFAULT_WEIGHTS_FILE

    return Path(os.environ.get("TAGROUTER_WEIGHTS_FILE", "").strip() or DEFAULT_WEIGHTS_FILE)


# --- vocab, tag ----------------------------------------------------------------------------
def cmd_vocab_build(args) -> int:
    from services.common.settings import TaggerSettings
    from tagrouter.core.encoder import Encoder
    from tagrouter.offline.vocab_build import VocabularyError, build_vocabulary

    settings = TaggerSettings.from_env()
    try:
        vocab, report = build_vocabulary(Encoder(settings.model_dir), args.taxonomy, args.corpus, args.raw)
    except VocabularyError as err:
        return _fail(str(err))
    vocab.save(args.out)
    levels = ", ".join(f"{n} {lv}" for lv, n in report.kept.items())
    print(f"wrote {args.out}: {len(vocab.tags)} tags ({levels}), version {vocab.version}; "
          f"{sum(len(v) for v in report.merged.values())} candidates merged, {len(report.diffuse)} diffuse "
          f"and {len(report.rare)} rare dropped")
    return 0


def cmd_tag(args) -> int:
    from services.common.settings import TaggerSettings
    from services.tagger.app import load_tagger

    if not args.text.strip():
        return _fail("the text is empty")
    tagger = load_tagger(TaggerSettings.from_env())
    (tagged,) = tagger.tag([args.text])
    tags = [{"name": n, "level": lv, "score": round(s, 4)} for n, lv, s in tagged.tags]
    if args.json:
        print(json.dumps({"tags": tags, "vocabulary_version": tagger.vocabulary.version,
                          "input_tokens": tagged.input_tokens, "truncated": tagged.truncated}))
    else:
        for t in tags:
            print(f"{t['level']:<7} {t['name']:<40} {t['score']:.3f}")
        print(f"vocabulary {tagger.vocabulary.version}")
    return 0


def cmd_tag_quality(args) -> int:
    from services.common.settings import TaggerSettings
    from tagrouter.core.encoder import Encoder
    from tagrouter.core.vocabulary import Vocabulary
    from tagrouter.offline import tag_quality
    from tagrouter.offline.corpora import CorpusError

    settings = TaggerSettings.from_env()
    vocab = Vocabulary.load(settings.vocab_dir)
    encoder = Encoder(settings.model_dir)
    params = (vocab.build_info or {}).get("params", {})
    try:
        prompts = tag_quality.held_out_prompts(args.raw, params.get("held_out_fraction", 0.3))
    except CorpusError as err:
        return _fail(str(err))
    embeddings = encoder.embed([p.text for p in prompts])
    rows = tag_quality.measure(vocab, prompts, embeddings)
    topic_rows = tag_quality.topic_threshold_rows(vocab, prompts, embeddings)
    ablation = None
    if not args.no_ablation:
        if tag_quality.HAVE_HARNESS:
            from tagrouter.core.tag_model import TagModel

            tagger = TagModel(encoder, vocab, settings.tags_per_level, settings.min_score,
                            topic_min_score=settings.topic_min_score)
            ablation = tag_quality.ablation_section(args.suites, tagger)
    text = tag_quality.render(vocab, rows, len(prompts), ablation, topic_rows)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


# --- bench ---------------------------------------------------------------------------------
def cmd_bench(args) -> int:
    from tagrouter.bench import run

    if (args.tagger or args.scorer) and not args.router:
        return _fail("--tagger and --scorer go with --router (a running stack)")
    return run(args)


# --- parser --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from services.common.settings import DEFAULT_VOCAB_DIR
    from tagrouter.offline.vocab_build import RAW_DIR, TAXONOMY_FILE

    parser = argparse.ArgumentParser(prog="tagrouter", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run a service (or all three, with an embedded Redis if REDIS_URL is unset)")
    serve.add_argument("service", choices=["tagger", "scorer", "router", "all"])
    serve.add_argument("--port", type=int, help="gRPC port (overrides TAGROUTER_PORT; the router's with `all`)")
    serve.add_argument("--tagger-addr", help="router: tagger host:port (overrides TAGGER_ADDR)")
    serve.add_argument("--scorer-addr", help="router: scorer host:port (overrides SCORER_ADDR)")
    serve.add_argument("--tagger-port", type=int, default=50053, help="with `all`: tagger port (0: any free port)")
    serve.add_argument("--scorer-port", type=int, default=50052, help="with `all`: scorer port (0: any free port)")
    serve.add_argument("--sample", help="with `all`: route this query once ready and print the answer")
    serve.set_defaults(func=cmd_serve)

    route = sub.add_parser("route", help="ask a router which model should answer TEXT")
    route.add_argument("text")
    route.add_argument("--json", action="store_true", help="print one JSON object")
    route.add_argument("--router", default=os.environ.get("TAGROUTER_ROUTER_ADDR", DEFAULT_ROUTER_ADDR),
                       help=f"router host:port (default $TAGROUTER_ROUTER_ADDR or {DEFAULT_ROUTER_ADDR})")
    route.add_argument("--embedded", action="store_true", help="run the whole path in this process instead")
    route.add_argument("--candidates", nargs="+", metavar="MODEL", help="route among these models only")
    route.add_argument("--cost-weight", type=float, help="cost knob lambda >= 0 (default: the server's)")
    route.add_argument("--quality-margin", type=float,
                       help="quality margin theta >= 0 toward the strongest model (default: the server's)")
    route.add_argument("--client-tags", nargs="+", metavar="TAG",
                       help="free-text tags the caller knows; aligned to the canonical vocabulary")
    route.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    route.set_defaults(func=cmd_route)

    fit = sub.add_parser("fit", help="count a suite's outcomes per (tag, model) into weights")
    fit.add_argument("--suite", required=True, type=Path, help="suite folder (suite.json + outcomes.jsonl)")
    fit.add_argument("--split", default="train", choices=["train", "valid", "test"])
    fit.add_argument("--out", type=Path, help="write the weights to this JSON file")
    fit.add_argument("--scorer", help="load the weights into the scorer at host:port")
    fit.add_argument("--no-tune", action="store_true",
                     help="default scoring parameters and the tagger's own tags (no choice on valid)")
    fit.add_argument("--no-topics", action="store_true", help="choose parameters on valid, but no suite-fitted topic tags")
    fit.add_argument("--vocab-out", type=Path, help="where the vocabulary with topic tags goes "
                     "(default build/vocabulary/SUITE)")
    fit.add_argument("--add", metavar="MODEL", help="add MODEL's outcomes (rows in --suite) to --weights")
    fit.add_argument("--weights", type=Path, help="with --add: the weights the model joins")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.set_defaults(func=cmd_fit)

    ev = sub.add_parser("eval", help="fit every router on train, choose on valid, report on test")
    ev.add_argument("--suite", required=True, type=Path, help="suite folder (suite.json + outcomes.jsonl)")
    ev.add_argument("--out", required=True, type=Path, help="RESULT.json")
    ev.add_argument("--plot", type=Path, help="CURVE.png: AR against cost for every router and model")
    ev.add_argument("--quiet", action="store_true", help="no progress bars, no table")
    ev.set_defaults(func=cmd_eval)

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

    vocab = sub.add_parser("vocab", help="the tag vocabulary")
    vocab_sub = vocab.add_subparsers(dest="vocab_command", required=True)
    build = vocab_sub.add_parser("build", help="build the vocabulary from the taxonomy and the query corpora")
    build.add_argument("--taxonomy", type=Path, default=TAXONOMY_FILE)
    build.add_argument("--raw", type=Path, default=RAW_DIR, help=f"raw corpora folder (default {RAW_DIR})")
    build.add_argument("--corpus", type=Path, action="append",
                       help="a corpus file (repeatable; default: the known corpora under --raw)")
    build.add_argument("--out", type=Path, default=DEFAULT_VOCAB_DIR)
    build.set_defaults(func=cmd_vocab_build)

    quality = sub.add_parser("tag-quality", help="measure the tagger on held-out labelled queries (docs/TAGS.md)")
    quality.add_argument("--raw", type=Path, default=RAW_DIR, help=f"raw corpora folder (default {RAW_DIR})")
    quality.add_argument("--suites", type=Path, default=RAW_DIR.parent / "suites", help="suites for the ablation")
    quality.add_argument("--out", type=Path, help="write the Markdown report here (default: print it)")
    quality.add_argument("--no-ablation", action="store_true", help="skip the routing ablation")
    quality.set_defaults(func=cmd_tag_quality)

    tag = sub.add_parser("tag", help="tag TEXT in-process and print the tags")
    tag.add_argument("text")
    tag.add_argument("--json", action="store_true")
    tag.set_defaults(func=cmd_tag)
    bench = sub.add_parser("bench", help="measure the encoder floor and Tag/Score/Route latency and throughput")
    bench.add_argument("--out", type=Path, help="results (default build/BENCH.json; with --ghz-config: stdout only)")
    bench.add_argument("--router", help="bench a running router at host:port (loopback) instead of starting a stack")
    bench.add_argument("--tagger", help="with --router: also measure Tag at this tagger")
    bench.add_argument("--scorer", help="with --router: also measure Score at this scorer")
    bench.add_argument("--lengths", nargs="+", choices=["short", "long"], default=["short", "long"])
    bench.add_argument("--rounds", type=int, default=3, help="interleaved rounds per query length (default 3)")
    bench.add_argument("--scale", type=float, default=1.0, help="multiply the request counts (0.1 for a smoke run)")
    bench.add_argument("--phase-seconds", type=float, default=10.0, help="time bound of each request loop")
    bench.add_argument("--shared", type=Path, default=None, help="folder of raw prompt sets (default ../shared/data/raw)")
    bench.add_argument("--ghz-config", type=Path, nargs="+", metavar="FILE",
                       help="run these bench/ghz scenarios (as ghz would) instead of the full bench")
    bench.add_argument("--ghz-total", type=int, help="with --ghz-config: at most this many requests per scenario")
    bench.add_argument("--check", action="store_true", help="exit 1 when a target of issue 5 is not met")
    bench.add_argument("--quiet", action="store_true")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve" and args.sample:
        args.sample_args = argparse.Namespace(text=args.sample, candidates=None, cost_weight=None, client_tags=None,
                                              quality_margin=None)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
