"""`tagrouter route`: ask a running router (or a private stack, `--embedded`) which model should answer."""
from __future__ import annotations

import asyncio
import json
import os

from tagrouter.cli.common import bounded, fail, text_argument

DEFAULT_ROUTER_ADDR = "127.0.0.1:50051"


def route_request(args):
    """The RouteRequest of the command's arguments (text, candidates, knobs, client tags)."""
    from tagrouter.router.v1 import router_pb2

    request = router_pb2.RouteRequest(query=args.text, candidate_models=args.candidates or [],
                                      client_tags=getattr(args, "client_tags", None) or [])
    if args.cost_weight is not None:
        request.cost_weight = args.cost_weight
    for knob in ("quality_margin", "max_cost_pct", "min_quality_pct"):
        if getattr(args, knob, None) is not None:
            setattr(request, knob, getattr(args, knob))
    return request


def knob_line(doc: dict) -> str:
    """The knob a Route applied, where it came from and what it gave on the fit's selection rows."""
    line = f"cost_weight {doc['cost_weight']:.4g}, quality_margin {doc['quality_margin']:.4g} ({doc['knob_source']}"
    if doc.get("knob_cost_pct"):
        line += (f": on the fit's selection rows {doc['knob_cost_pct']:.0f}% of the priciest model's cost, "
                 f"{doc['knob_quality_pct']:.0f}% of the best model's accept rate")
    return line + ")"


async def call_route(address: str, request, timeout: float):
    import grpc

    from tagrouter.router.v1 import router_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        return await router_pb2_grpc.RouterServiceStub(channel).Route(request, timeout=timeout)


def print_route(response, as_json: bool) -> None:
    from google.protobuf.json_format import MessageToDict

    doc = MessageToDict(response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    if as_json:
        print(json.dumps(doc))
        return
    print(f"model: {doc['model']}  (estimated cost ${doc['estimated_cost_usd']:.6f}"
          f"{', DEGRADED: ' + doc['degraded_reason'] if doc['degraded'] else ''})")
    print("knob:   " + knob_line(doc))
    print("tags:   " + ", ".join(f"{t['name']} {t['score']:.2f}" for t in doc["tags"]))
    for a in doc["abstained"]:  # the trained heads' levels without a tag: scored from the coarser ones
        print(f"        no {a['level']} tag: its head's top, {a['top']} at {a['probability']:.2f}, "
              f"is below {a['threshold']:.2f}")
    for s in sorted(doc["scores"], key=lambda s: -s["score"]):
        print(f"  {s['model']:<40} score {s['score']:.3f}  cost ${s['estimated_cost_usd']:.6f}")
    why = doc.get("explanation") or {}
    if why.get("summary"):
        print("why:    " + why["summary"])


def cmd_route(args) -> int:
    import grpc

    if not args.text.strip():
        return fail("the query is empty")
    request = route_request(args)
    try:
        if args.embedded:
            response = _route_embedded(request, args.timeout or 10.0)
        else:
            response = asyncio.run(call_route(args.router, request, args.timeout or 5.0))
    except EmbeddedStackFailed as err:
        return fail(f"the embedded stack did not start: {err}", 1)
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.UNAVAILABLE and not args.embedded:
            return fail(f"no router answers at {args.router} ({err.details()}); start one with `make run`, "
                        "or use --embedded", 1)
        return fail(f"{err.code().name}: {err.details()}", 1)
    print_route(response, args.json)
    return 0


class EmbeddedStackFailed(RuntimeError):
    """A service of the embedded stack exited while starting; the message is its last error line."""


def _route_embedded(request, timeout: float):
    """The whole path on this machine: private Redis, tagger, scorer and router on free ports. Their
    logs go to a temporary folder, so a service that cannot start says why."""
    import tempfile
    from pathlib import Path

    from tagrouter.stack import LocalStack, ServiceExited

    env = dict(os.environ, TAGROUTER_LOG_LEVEL="WARNING", TAGROUTER_METRICS_PORT="0")
    with tempfile.TemporaryDirectory() as logs:
        try:
            with LocalStack(env=env, log_dir=Path(logs)) as stack:
                return asyncio.run(call_route(stack.router, request, timeout))
        except ServiceExited as err:
            raise EmbeddedStackFailed(_last_error(Path(logs)) or str(err)) from None


def _last_error(log_dir) -> str:
    """The exception that ended a service (a traceback's last line, `module.SomeError: why`), with the
    service's name; the others' cancellation as the stack stopped is not it."""
    import re

    ended = re.compile(r"^[\w.]+(Error|Exception): ")
    for log in sorted(log_dir.glob("*.log")):
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
        errors = [line for line in lines if ended.match(line) and "CancelledError" not in line]
        if errors:
            return f"{log.stem}: {errors[-1]}"
    return ""


def add_parsers(sub) -> None:
    route = sub.add_parser("route", help="ask a router which model should answer TEXT")
    route.add_argument("text", type=text_argument)
    route.add_argument("--json", action="store_true", help="print one JSON object")
    route.add_argument("--router", default=os.environ.get("TAGROUTER_ROUTER_ADDR", DEFAULT_ROUTER_ADDR),
                       help=f"router host:port (default $TAGROUTER_ROUTER_ADDR or {DEFAULT_ROUTER_ADDR})")
    route.add_argument("--embedded", action="store_true", help="run the whole path in this process instead")
    route.add_argument("--candidates", nargs="+", metavar="MODEL", help="route among these models only")
    route.add_argument("--cost-weight", type=float, help="cost knob lambda >= 0 (default: the server's)")
    route.add_argument("--quality-margin", type=float,
                       help="quality margin theta >= 0 toward the strongest model (default: the server's)")
    route.add_argument("--max-cost-pct", type=float, metavar="P",
                       help="instead of the raw knobs: spend at most P%% of always using the priciest model (0-100]")
    route.add_argument("--min-quality-pct", type=float, metavar="Q",
                       help="instead of the raw knobs: keep at least Q%% of the best model's accept rate [0-100]")
    route.add_argument("--client-tags", nargs="+", metavar="TAG",
                       help="free-text tags the caller knows; aligned to the canonical vocabulary")
    route.add_argument("--timeout", type=bounded(float, 0, strict=True),
                       help="seconds (default 5; with --embedded 10, the stack's first call warms it)")
    route.set_defaults(func=cmd_route)
