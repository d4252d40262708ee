"""The bench/ghz scenarios, run the way ghz would, through the Python gRPC client.

ghz cannot be installed on the CI machines; these run the same files: their call, data
(round-robin, with ghz's call-data templates filled in), total, concurrency, max-duration and
timeout. Each run is bounded by the file's total and max-duration and targets loopback only.
"""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from tagrouter.bench.figures import latency_summary
from tagrouter.bench.load import check_loopback, in_flight

# The call-data templates of ghz that the scenarios in bench/ghz use (ghz renders Go templates).
GHZ_TEMPLATES = {
    "{{.RequestNumber}}": lambda n, now: str(n),
    "{{.TimestampUnix}}": lambda n, now: str(int(now)),
    "{{.TimestampUnixMilli}}": lambda n, now: str(int(now * 1e3)),
    "{{.TimestampUnixNano}}": lambda n, now: str(int(now * 1e9)),
}
DURATION_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def load_ghz_config(path: Path) -> dict:
    """A ghz configuration file (JSON or TOML), as a dict."""
    import tomllib

    text = Path(path).read_text()
    return tomllib.loads(text) if str(path).endswith(".toml") else json.loads(text)


def ghz_method(call: str):
    """The method descriptor a ghz `call` names ('pkg.Service.Method' or 'pkg.Service/Method')."""
    from google.protobuf import descriptor_pool

    import tagrouter.router.v1.router_pb2  # noqa: F401 - registers the descriptors
    import tagrouter.scorer.v1.scorer_pb2  # noqa: F401
    import tagrouter.tagger.v1.tagger_pb2  # noqa: F401

    service, _, method = call.replace("/", ".").rpartition(".")
    return descriptor_pool.Default().FindServiceByName(service).FindMethodByName(method)


def render_ghz_data(data, number: int, now: float):
    """ghz call data with its templates filled in for request `number`."""
    if isinstance(data, str):
        for template, value in GHZ_TEMPLATES.items():
            if template in data:
                data = data.replace(template, value(number, now))
        if "{{" in data:
            raise ValueError(f"unsupported ghz template in {data!r}")
        return data
    if isinstance(data, list):
        return [render_ghz_data(x, number, now) for x in data]
    if isinstance(data, dict):
        return {k: render_ghz_data(v, number, now) for k, v in data.items()}
    return data


def ghz_requests(config: dict, count: int) -> list:
    """The request messages a ghz run of `config` sends: data objects round-robin, templates filled."""
    from google.protobuf import json_format, message_factory

    method = ghz_method(config["call"])
    request_class = message_factory.GetMessageClass(method.input_type)
    data = config.get("data", {})
    items = data if isinstance(data, list) else [data]
    now = time.time()
    return [json_format.ParseDict(render_ghz_data(items[i % len(items)], i, now), request_class()) for i in range(count)]


def duration_s(text: str | None, default: float) -> float:
    """Seconds of a ghz duration ('500ms', '30s', '2m', '1h'); `default` when unset."""
    if not text:
        return default
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * DURATION_UNITS[unit]
    raise ValueError(f"unsupported duration {text!r}")


async def _run_ghz(config: dict, address: str) -> dict:
    import grpc
    from google.protobuf import message_factory

    method = ghz_method(config["call"])
    response_class = message_factory.GetMessageClass(method.output_type)
    total, concurrency = int(config.get("total", 200)), int(config.get("concurrency", 50))
    budget, timeout = duration_s(config.get("max-duration"), 60.0), duration_s(config.get("timeout"), 20.0)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    degraded = 0
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(f"/{method.containing_service.full_name}/{method.name}",
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=response_class.FromString)

        async def send(request) -> None:
            nonlocal degraded
            t0 = time.perf_counter()
            try:
                reply = await call(request, timeout=timeout)
                code = "OK"
                degraded += bool(getattr(reply, "degraded", False))
            except grpc.aio.AioRpcError as err:
                code = err.code().name
            latencies.append(time.perf_counter() - t0)
            statuses[code] = statuses.get(code, 0) + 1

        wall = await in_flight(send, ghz_requests(config, total), concurrency, budget)
    return {"name": config.get("name", ""), "call": config["call"], "count": len(latencies), "total_s": round(wall, 3),
            "rps": round(len(latencies) / wall, 1) if wall else None, **latency_summary(latencies),
            "status_distribution": statuses, "degraded": degraded}


def run_ghz_scenario(path: Path, address: str, total: int | None = None) -> dict:
    """Runs one bench/ghz scenario the way ghz would (total, concurrency, max-duration, data round-robin).

    `total` lowers the file's request count (a smoke run in CI); the calls and data stay the file's.
    """
    check_loopback(address)
    config = load_ghz_config(path)
    if total:
        config["total"] = min(int(config.get("total", 200)), total)
        config["concurrency"] = min(int(config.get("concurrency", 50)), config["total"])
    return asyncio.run(_run_ghz(config, address))
