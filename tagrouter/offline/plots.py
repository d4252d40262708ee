"""The evaluation's figure: AR against cost on test, every router's frontier and every single model."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tagrouter.offline import quality_metrics as metrics

# name -> (colour, line style, width); a router not listed gets the next default colour
STYLES = {"tagrouter": ("C3", "-", 2.2), "knn": ("C0", "--", 1.3), "mf": ("C2", "--", 1.3),
          "forc": ("C4", "--", 1.3), "random": ("0.5", ":", 1.3)}


def plot(doc: dict, path: Path) -> None:
    """AR against cost: every router's frontier and every single model (matplotlib, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    for name, r in doc["routers"].items():
        color, ls, lw = STYLES.get(name, (None, "-", 1.2))
        front = metrics.pareto_frontier(np.array(r["curve"]).reshape(-1, 2))
        ax.plot(front[:, 0], front[:, 1], ls, color=color, lw=lw, marker=".", ms=3,
                label=f"{name} (AUC {r['auc']:.3f})")
    for name, m in doc["single_models"].items():
        ax.scatter([m["cost_usd"]], [m["ar"]], color="k", s=14, zorder=5)
        ax.annotate(name.split("/")[-1], (m["cost_usd"], m["ar"]), fontsize=7, xytext=(3, -8),
                    textcoords="offset points")
    o = doc["oracle"]
    ax.scatter([o["cost_usd"]], [o["ar"]], marker="*", color="gold", edgecolor="k", s=90, zorder=6, label="oracle")
    ax.set_xlabel("total cost of the test queries (USD)")
    ax.set_ylabel("accept rate (AR)")
    ax.set_title(f"{doc['suite']}: AR against cost on test")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
