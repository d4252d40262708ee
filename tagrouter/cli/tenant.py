"""`tagrouter tenant create|update|show|list|delete`: manage tenants through the router's TenantService.

The admin token comes from TAGROUTER_ADMIN_TOKEN; a new token is printed once (only its hash is kept).
"""
from __future__ import annotations

import json
import os

from tagrouter.cli.common import fail

DEFAULT_ROUTER_ADDR = "127.0.0.1:50051"


def add_parsers(sub) -> None:
    parser = sub.add_parser("tenant", help="create, update, show, list or delete tenants (admin token)")
    actions = parser.add_subparsers(dest="action", required=True)
    for action in ("create", "update", "show", "delete", "list"):
        p = actions.add_parser(action)
        p.add_argument("--router", default=os.environ.get("TAGROUTER_ROUTER_ADDR", DEFAULT_ROUTER_ADDR),
                       help=f"router host:port (default $TAGROUTER_ROUTER_ADDR or {DEFAULT_ROUTER_ADDR})")
        if action != "list":
            p.add_argument("id")
        if action in ("create", "update"):
            p.add_argument("--name")
            p.add_argument("--models", help="comma-separated allowed pool (default: the whole pool)")
            p.add_argument("--cost-weight", type=float)
            p.add_argument("--quality-margin", type=float)
            p.add_argument("--mode", choices=("hard", "downgrade", "pace"))
            p.add_argument("--downgrade-at-pct", type=float)
            p.add_argument("--downgrade-max-cost-usd", type=float)
            for window in ("minute", "hour", "day", "month"):
                p.add_argument(f"--per-{window}", type=float, metavar="USD",
                               help=f"budget per {window}" + (" (update: 0 drops it)" if action == "update" else ""))
        if action == "update":
            p.add_argument("--new-token", action="store_true", help="add a token (printed once)")
            p.add_argument("--revoke-old-tokens", action="store_true", help="with --new-token: drop the others")
        p.set_defaults(func=run)


def tenant_message(args):
    """The Tenant message and the names of the fields the arguments set."""
    from tagrouter.router.v1 import router_pb2

    tenant, fields = router_pb2.Tenant(id=args.id), []
    for name in ("name", "cost_weight", "quality_margin", "mode", "downgrade_at_pct", "downgrade_max_cost_usd"):
        if getattr(args, name) is not None:
            setattr(tenant, name, getattr(args, name))
            fields.append(name)
    if args.models is not None:
        tenant.allowed_models.extend(m.strip() for m in args.models.split(",") if m.strip())
        fields.append("allowed_models")
    budgets = [router_pb2.Budget(window=w, usd=getattr(args, f"per_{w}")) for w in ("minute", "hour", "day", "month")
               if getattr(args, f"per_{w}") is not None]
    if budgets:
        tenant.budgets.extend(budgets)
        fields.append("budgets")
    return tenant, fields


def run(args) -> int:
    import grpc
    from google.protobuf.json_format import MessageToDict

    from tagrouter.router.v1 import router_pb2, router_pb2_grpc

    token = os.environ.get("TAGROUTER_ADMIN_TOKEN", "")
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    with grpc.insecure_channel(args.router) as channel:
        stub = router_pb2_grpc.TenantServiceStub(channel)
        try:
            if args.action == "list":
                answer = stub.ListTenants(router_pb2.ListTenantsRequest(), metadata=metadata, timeout=30)
            elif args.action in ("show", "delete"):
                call = stub.GetTenant if args.action == "show" else stub.DeleteTenant
                answer = call(router_pb2.TenantId(id=args.id), metadata=metadata, timeout=30)
            else:
                tenant, fields = tenant_message(args)
                request = router_pb2.TenantRequest(tenant=tenant)
                if args.action == "update":
                    if not fields and not args.new_token:
                        return fail("tenant update: nothing to change (give a field flag such as --per-hour, or "
                                    "--new-token)")
                    if "budgets" in fields:  # a window's flag changes that window; the others stay (0 drops it)
                        current = stub.GetTenant(router_pb2.TenantId(id=args.id), metadata=metadata, timeout=30)
                        windows = {b.window: b.usd for b in current.tenant.budgets}
                        windows.update({b.window: b.usd for b in tenant.budgets})
                        del request.tenant.budgets[:]  # the request holds its own copy of `tenant`
                        request.tenant.budgets.extend(router_pb2.Budget(window=w, usd=usd)
                                                      for w, usd in windows.items() if usd)
                    request.update_fields.extend(fields)
                    request.new_token, request.revoke_old_tokens = args.new_token, args.revoke_old_tokens
                call = stub.CreateTenant if args.action == "create" else stub.UpdateTenant
                answer = call(request, metadata=metadata, timeout=30)
        except grpc.RpcError as err:
            return fail(f"tenant {args.action}: {err.code().name}: {err.details()}")
    print(json.dumps(MessageToDict(answer, preserving_proto_field_name=True), indent=2))
    return 0
