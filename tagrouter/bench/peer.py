"""`tagrouter bench --peer`: the shared peer comparison (`shared/bench/peer/route_vs_peer.py`) on the
bench's own stack, in the same run: Route against aurelio semantic-router + fastembed in-process.

The script runs in its own environment (semantic-router and fastembed are no dependency of
ours), built once by `bash ../shared/bench/peer/setup.sh` in $PEER_HOME (default
${TMPDIR:-/tmp}/tagrouter-peer). Without that environment or the script the comparison is
skipped, and the result says why.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from tagrouter.offline.paths import shared_dir

SCRIPT = Path("bench") / "peer" / "route_vs_peer.py"
PROMPTS = Path("data") / "raw" / "alpaca_eval" / "prompts.jsonl"
TIMEOUT_S = 1800  # one run is 3 rounds x 300 prompts x 3 systems: minutes, never an hour


def peer_home() -> Path:
    return Path(os.environ.get("PEER_HOME") or Path(os.environ.get("TMPDIR") or tempfile.gettempdir()) / "tagrouter-peer")


def missing(shared: Path, home: Path) -> str | None:
    """Why the comparison cannot run here, or None."""
    for path, what in ((shared / SCRIPT, "the peer script"), (shared / PROMPTS, "the AlpacaEval prompts")):
        if not path.exists():
            return f"skipped: {what} is not at {path} (it comes with ../shared beside the checkout)"
    for path, what in ((home / "venv" / "bin" / "python", "the peer environment"),
                       (home / "fe_cache", "the fastembed cache")):
        if not path.exists():
            return f"skipped: {what} is not at {path} (build it with `bash ../shared/bench/peer/setup.sh`)"
    return None


def run_peer(router: str, model_dir: Path, runs: int, rounds: int = 3, say=print) -> dict:
    """`runs` runs of route_vs_peer.py against `router`: each its JSON line, or why it was skipped."""
    shared, home = shared_dir(), peer_home()
    reason = missing(shared, home)
    if reason is not None:
        say(f"peer comparison {reason}")
        return {"skipped": reason}
    command = [str(home / "venv" / "bin" / "python"), str(shared / SCRIPT), "--router", router,
               "--model-dir", str(model_dir), "--prompts", str(shared / PROMPTS), "--rounds", str(rounds),
               "--peer-fastembed", str(home / "fe_cache")]
    results = []
    for i in range(runs):
        say(f"peer comparison, run {i + 1}/{runs} (route_vs_peer.py, {rounds} rounds) ...")
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S,
                              env=dict(os.environ, HF_HUB_OFFLINE="1"))
        if done.returncode != 0:
            raise RuntimeError(f"route_vs_peer.py failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["route_p99_over_sr_fastembed_p99"] = round(result["route_p99_ms"] / result["sr_fastembed_p99_ms"], 3)
        say(f"  Route p50 {result['route_p50_ms']} / p99 {result['route_p99_ms']} ms; semantic-router + fastembed "
            f"p50 {result['sr_fastembed_p50_ms']} / p99 {result['sr_fastembed_p99_ms']} ms; "
            f"encoder p50 {result['encoder_p50_ms']} ms")
        results.append(result)
    return {"command": " ".join(command), "runs": results,
            "route_at_most_peer": all(r["route_p50_ms"] <= r["sr_fastembed_p50_ms"]
                                      and r["route_p99_ms"] <= r["sr_fastembed_p99_ms"] for r in results)}
