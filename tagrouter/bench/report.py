"""What BENCH.json says beside the figures: the machine, the versions, and the targets met."""
from __future__ import annotations

import contextlib
import json
import os
import platform
from importlib import metadata
from pathlib import Path

# Targets on the 2-core reference machine (ratios, so they travel across machines): issue 5's,
# with issue 21's tighter short p50 and c32 bounds.
TARGETS = {
    "short": {"route_p50_over_encoder_p50": ("max", 1.5), "route_p99_over_encoder_p50": ("max", 3.0),
              "route_c32_qps_over_encoder_batch_qps": ("min", 0.8)},
    "long": {"route_p50_over_encoder_p50": ("max", 1.5)},
}
VERSIONED = ("tagrouter", "grpcio", "protobuf", "onnxruntime", "tokenizers", "numpy", "redis", "hiredis")


def versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """CPU seconds (user + system) a process, or one of its threads, has used so far (Linux /proc)."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    model = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cores": cores, "cpu_count": os.cpu_count(), "cpu_model": model, "platform": platform.platform(),
            "load_average_at_start": load_average()}


def check_targets(results: dict) -> dict:
    """Each target of the issue: the measured ratio, the bound, and whether it is met."""
    out = {}
    for length, targets in TARGETS.items():
        if length not in results:
            continue
        for key, (kind, bound) in targets.items():
            value = results[length]["ratios"].get(key)
            met = value is not None and (value <= bound if kind == "max" else value >= bound)
            out[f"{length}.{key}"] = {"value": value, kind: bound, "met": met}
    for i, run in enumerate(results.get("peer", {}).get("runs", [])):  # issue 21: at most the library's
        for key in ("route_p50_over_sr_fastembed_p50", "route_p99_over_sr_fastembed_p99"):
            out[f"peer{i + 1}.{key}"] = {"value": run[key], "max": 1.0, "met": run[key] <= 1.0}
    return out


def target_lines(targets: dict) -> list[str]:
    """One line a target: its value, its bound, met or not."""
    lines = []
    for key, t in targets.items():
        bound = f"<= {t['max']}" if "max" in t else f">= {t['min']}"
        lines.append(f"  {key}: {t['value']} (target {bound}) {'met' if t['met'] else 'NOT MET'}")
    return lines


def write_json(doc: dict, out: Path | None) -> str:
    """`doc` as indented JSON, written to `out` (its folder made) when given; the text."""
    text = json.dumps(doc, indent=2)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    return text
