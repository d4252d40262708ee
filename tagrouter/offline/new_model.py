"""A new model with few outcomes (issue 15, the training-free claim): one model held out of a pool,
then added with 25, 50, 100, 200 and all of its train outcomes.

    python -m tagrouter.offline.new_model --suites ../shared/data/suites --out docs/NEW-MODEL.md

Per suite: the held-out model is the best single model on train (highest train accept rate; the
arrival that matters most, chosen without test). Every router's settings are chosen once, as
`tagrouter eval` chooses them (train out-of-fold + valid, the one-standard-error rule for the baselines), and kept
fixed while the model joins: a deployed router does not retune when a model arrives. At each step
the same rows are given to every router: every train query's outcomes for the other models, and
the new model's outcomes on N train queries drawn at random (`--seeds` draws, averaged).
- TagRouter: fit's add path (`fit.outcomes_with`, `count_matrix` with only the new model's answers):
  the pool's counts on all train rows plus what the new model adds on its N rows.
- kNN, MF, FORC: refitted; the pool's columns from all train rows, the new model's column from a
  fit on its N rows (kNN: its neighbours among them; MF: the low-rank fit of all models on them).
The figure is the pool's (all models') AUC on test with the chosen settings. Nothing is chosen on test.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tagrouter.core.scoring import pairwise_outcomes
from tagrouter.offline import baselines, paired, selection
from tagrouter.offline.evaluate import select_all
from tagrouter.offline.fit import count_matrix, incidence, outcomes_with, tag_index
from tagrouter.offline.prepare import Prepared, configured_tagger, prepare, singles_on
from tagrouter.offline.report import comparison, router_doc
from tagrouter.offline.routers import Prediction, Router, default_routers
from tagrouter.offline.routers.tag_router import TagRouter, parse_setting, score_tagged, tag_table

STEPS = (25, 50, 100, 200)
ROUTERS = ("tagrouter", "knn", "mf", "forc")


def pool_outcomes(scores: np.ndarray, tie_margin: float, new: int) -> np.ndarray:
    """[Q, M, 3] the comparisons among the other models only (zeros in the new model's column)."""
    others = [m for m in range(scores.shape[1]) if m != new]
    out = np.zeros((*scores.shape, 3))
    if len(others) > 1:
        out[:, others] = pairwise_outcomes(scores[:, others], tie_margin)
    return out


def joined_counts(carries: np.ndarray, scores: np.ndarray, tokens: np.ndarray, tie_margin: float, new: int,
                  train: np.ndarray, given: np.ndarray) -> np.ndarray:
    """[T, M, 5] the pool's counts on `train` plus what model `new` adds on its `given` rows."""
    answered = np.ones(scores.shape)
    answered[:, new] = 0.0
    base = count_matrix(carries[train], pool_outcomes(scores, tie_margin, new)[train], tokens[train], answered[train])
    mine = np.zeros(scores.shape)
    mine[:, new] = 1.0
    added = outcomes_with(scores[given], tie_margin, new)
    return base + count_matrix(carries[given], added, tokens[given], mine[given])


def tagrouter_prediction(router: TagRouter, prep: Prepared, setting: dict, new: int, given: np.ndarray) -> Prediction:
    suite = prep.suite
    granularity, params = parse_setting(setting)
    tags = router.suite_tags(prep)(granularity)
    train = suite.rows("train")
    table = tag_table(prep, tags, train)  # the tag names and confidences; counts replaced below
    names = [[t for t, _ in q] for q in tags]
    carries = incidence(names, tag_index([names[r] for r in train]))
    counts = joined_counts(carries, suite.scores, suite.output_tokens, suite.tie_margin, new, train, given)
    rows = np.arange(len(suite.queries))
    scores, expected, prior = score_tagged(counts[1:], counts[0], table.confidence[rows][:, 1:], table.names[1:],
                                           params, router.combine)
    return Prediction(scores, expected, prior)


def _baseline(kind: str, setting: dict, x: np.ndarray, y: np.ndarray, length: np.ndarray,
              at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One baseline at one setting: ([Q, M] scores, [Q, M] lengths) of the queries `at`."""
    if kind == "knn":
        both = baselines.knn_predict(x, np.concatenate([y, length], axis=1), at, [setting["k"]])[setting["k"]]
        return both[:, : y.shape[1]], both[:, y.shape[1]:]
    ridge = baselines.Ridge(x, np.concatenate([y, length], axis=1))
    m = y.shape[1]
    return (ridge.predict(at, setting["alpha"], setting.get("rank"), slice(0, m)),
            ridge.predict(at, setting["alpha"], columns=slice(m, None)))


def baseline_prediction(kind: str, prep: Prepared, setting: dict, new: int, given: np.ndarray) -> Prediction:
    suite, x = prep.suite, prep.embeddings
    train = suite.rows("train")
    scores, lengths = _baseline(kind, setting, x[train], suite.scores[train], suite.output_tokens[train], x)
    new_scores, new_lengths = _baseline(kind, setting, x[given], suite.scores[given], suite.output_tokens[given], x)
    scores[:, new], lengths[:, new] = new_scores[:, new], new_lengths[:, new]
    return Prediction(scores, lengths)


def test_auc(prep: Prepared, router: Router, setting: dict, prediction: Prediction) -> tuple[float, np.ndarray]:
    """The pool's test AUC of one prediction at the chosen setting (its cost scale kept, its anchor
    recomputed for the joined pool from train, as `selection.candidate` does), and its [K, T] choices."""
    _, scores, est, anchor = selection.candidate(prep, setting, prediction)
    points, routing = selection.on_test(prep, router, scores, est, setting, anchor)
    return router_doc(points, singles_on(prep, prep.suite.rows("test")))["auc"], routing.choices


def held_out_model(prep: Prepared) -> int:
    """The best single model on train: the arrival that matters most (chosen without test)."""
    return int(singles_on(prep, prep.suite.rows("train")).best)


def run_suite(prep: Prepared, steps=STEPS, seeds: int = 3) -> dict:
    suite = prep.suite
    train = suite.rows("train")
    new = held_out_model(prep)
    routers = default_routers(ROUTERS)
    results, _ = select_all(prep, False, routers)
    sizes = [n for n in steps if n < len(train)] + [len(train)]
    test = suite.rows("test")
    counts = paired.resample_counts(len(test))
    table: dict[str, dict[str, float]] = {r.name: {} for r in routers}
    resampled: dict[str, dict[str, np.ndarray]] = {r.name: {} for r in routers}  # mean over draws, per resample
    for router, result in zip(routers, results):
        for n in sizes:
            draws = range(seeds) if n < len(train) else range(1)
            aucs, boot = [], []
            for seed in draws:
                given = np.sort(np.random.default_rng(seed).choice(train, size=n, replace=False))
                if router.name == "tagrouter":
                    pred = tagrouter_prediction(router, prep, result.setting, new, given)
                else:
                    pred = baseline_prediction(router.name, prep, result.setting, new, given)
                auc, choices = test_auc(prep, router, result.setting, pred)
                aucs.append(auc)
                boot.append(paired.resampled_aucs(choices, prep.accept[test], suite.costs[test], counts))
            table[router.name][str(n)] = float(np.mean(aucs))
            resampled[router.name][str(n)] = np.mean(boot, axis=0)
    against = {name: {str(n): paired.summary(table["tagrouter"][str(n)] - table[name][str(n)],
                                             resampled["tagrouter"][str(n)] - resampled[name][str(n)])
                      for n in sizes} for name in table if name != "tagrouter"}
    singles = singles_on(prep, test)
    return {"suite": suite.name, "models": len(suite.models), "train": int(len(train)), "test": int(len(test)),
            "new_model": suite.model_names[new], "sizes": sizes, "seeds": seeds, "auc": table, "against": against,
            "eval_auc": {r.name: router_doc(r.test_points, singles)["auc"] for r in results},
            "settings": {r.name: r.setting for r in results}}


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tagrouter.offline.plots import STYLES

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=110)
    for name, by_n in doc["auc"].items():
        color, ls, lw = STYLES.get(name, (None, "-", 1.2))
        ax.plot(doc["sizes"], [by_n[str(n)] for n in doc["sizes"]], ls, color=color, lw=lw, marker="o", ms=3,
                label=name)
    ax.set_xscale("log")
    ax.set_xticks(doc["sizes"], [str(n) for n in doc["sizes"]])
    ax.set_xlabel(f"train outcomes of the new model {doc['new_model']} (last: all)")
    ax.set_ylabel("pool AUC on test")
    ax.set_title(f"{doc['suite']}: a new model joins with few outcomes")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def markdown(docs: list[dict], figures: dict[str, str], command: str) -> str:
    lines = ["# A new model with few outcomes", "",
             f"Generated by `{command}` (tagrouter/offline/new_model.py): do not edit by hand.", "",
             *[line.strip() for line in __doc__.split("\n\n", 2)[2].splitlines()], "",
             "\"eval\" is each router's test AUC in `tagrouter eval` (all train rows, every model refitted the",
             "usual way); the last step column (all of the new model's train outcomes) should be close to it",
             "for TagRouter (the add path gives exactly fit's counts) and equal for the baselines. Differences",
             "of a few thousandths are within the test noise (docs/RESULTS.md's paired intervals).", "",
             "TagRouter counts comparisons (win/tie/loss against the pool), the baselines regress absolute",
             "scores. On the rows the new model has not answered, TagRouter's counts compare the other models",
             "only; in a two-model pool no comparison exists there at all, so every count comes from the N rows,",
             "while kNN, MF and FORC keep the other model's scores on every train row.", ""]
    for doc in docs:
        sizes = doc["sizes"]
        head = [str(n) for n in sizes[:-1]] + [f"all ({sizes[-1]})"]
        lines += [f"## {doc['suite']}", "",
                  f"{doc['models']} models, {doc['train']} train and {doc['test']} test queries; the new model: "
                  f"`{doc['new_model']}`; AUC on test, mean over {doc['seeds']} draws of the N rows below all.", "",
                  "| router | " + " | ".join(head) + " | eval |", "|---|" + "---|" * (len(sizes) + 1)]
        for name, by_n in doc["auc"].items():
            lines.append(f"| {name} | " + " | ".join(f"{by_n[str(n)]:.4f}" for n in sizes)
                         + f" | {doc['eval_auc'][name]:.4f} |")
        lines += ["", "TagRouter's AUC minus each baseline's at each step, with the 95% paired bootstrap interval over "
                  "test queries (docs/RESULTS.md; per-resample AUCs averaged over the draws):", "",
                  "| against | " + " | ".join(head) + " |", "|---|" + "---|" * len(sizes)]
        for name, by_n in doc["against"].items():
            lines.append(f"| {name} | " + " | ".join(comparison(by_n[str(n)]) for n in sizes) + " |")
        lines += ["", f"![{doc['suite']}]({figures[doc['suite']]})", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", type=Path, required=True, help="a folder of suites (one subfolder each)")
    parser.add_argument("--out", type=Path, required=True, help="the Markdown report (figures beside it)")
    parser.add_argument("--seeds", type=int, default=3, help="draws of the N rows per step (default 3)")
    args = parser.parse_args(argv)
    from tagrouter.offline.suite import load_suite, suite_folders

    tagger = configured_tagger()
    docs, figures = [], {}
    for folder in suite_folders(args.suites):
        prep = prepare(load_suite(folder), tagger, show_progress=False)
        doc = run_suite(prep, seeds=args.seeds)
        figure = args.out.parent / "new-model" / f"{doc['suite']}.png"
        plot(doc, figure)
        figures[doc["suite"]] = str(figure.relative_to(args.out.parent))
        docs.append(doc)
        print(f"{doc['suite']}: " + json.dumps(doc["auc"]), file=sys.stderr)
    command = f"python -m tagrouter.offline.new_model --suites {args.suites} --out {args.out}"
    args.out.write_text(markdown(docs, figures, command))
    args.out.with_suffix(".json").write_text(json.dumps(docs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
