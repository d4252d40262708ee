"""Train the tagger's heads (`make tagger-heads`): one softmax layer per level on the tagger's features.

    python -m tagrouter.offline.train_tagger   # writes tagrouter/data/vocabulary/heads.{npz,json}

Data: the build side of the corpora (`corpora.split_held_out`, as the vocabulary build; the
held-out prompts are never seen here), each prompt labelled at a level by the canonical tag that
took its corpus label as an alias (Arena-Hard v2 subcategories, Vicuna-bench categories and
RouterBench benchmarks at the task level, the taxonomy's declared domains, Arena-Hard clusters
for topics), plus every tag's own description and examples. x is the encoder graph's
`tagger_features` (every layer pooled, `tagrouter.core.tag_heads`), or its last block alone where
that does better out of fold (FEATURE_SETS). A head's logits are
`SCALE * x @ W.T + b`, W starting at each tag's anchor (the unit mean features of its
description and examples) and pulled back to it by an L2 penalty: a tag with few labelled
prompts stays close to what its description says, one with many is sharpened by them. The
corpus labels are weighted equally (the benchmarks' hundreds of prompts do not drown the rest).

Calibration and thresholds on the build side only: each prompt's probabilities come from a
head trained without its fold (FOLDS-fold cross-fitting), a temperature is fitted to them by
log-loss, and a level's threshold is the smallest of THRESHOLDS (from one half) at which the served tag is right
at least PRECISION_FLOOR of the time on them by a 90% lower bound. The penalty and the feature
set are chosen by out-of-fold log-loss too. The served heads are trained on the whole build side
with that temperature folded in.

Deterministic: fixed seed, one thread, deterministic algorithms, features rounded as the
vocabulary build rounds its embeddings.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from tagrouter import data
from tagrouter.core.tag_heads import FEATURE_LAYERS, Head, TaggerHeads, softmax
from tagrouter.core.vocabulary import Vocabulary
from tagrouter.offline import paths
from tagrouter.offline.corpora import DEFAULT_CORPORA, HELD_OUT_FRACTION, Prompt, read_corpus, sample, split_held_out
from tagrouter.offline.tag_quality import truth_index

LEVELS = ("task", "domain", "topic")
SCALE = 20.0  # a cosine of 1 is a logit of 20: the prototype tagger's similarities as a softmax
PENALTIES = (0.0003, 0.001, 0.003, 0.03, 0.3)  # L2 pull to the anchors, chosen by out-of-fold log-loss
# What a level's head reads, chosen with the penalty by out-of-fold log-loss: all six layers' pooled
# outputs (the graph's features), or the last alone (the sentence embedding, as the prototypes do;
# 199 topics with a handful of prompts each can overfit the wider input).
FEATURE_SETS = ("all layers", "last layer")
FOLDS = 5
MAX_PER_LABEL = 200  # build prompts per corpus label (RouterBench has ~1,000 per benchmark)
# A level's served tags must be right at least PRECISION_FLOOR of the time: the threshold is the smallest
# whose out-of-fold precision is that with 90% confidence (Wilson lower bound), so a threshold that
# serves few build prompts (topics) needs a higher precision there.
PRECISION_FLOOR = 0.8
WILSON_Z = 1.2816  # one-sided 90%
# The labelled corpora are benchmarks (code, maths, science, commonsense) while users ask anything:
# trained on labels alone, a head puts "How do I get a refund for a cancelled flight?" in
# task:code-generation (.88) and a poem in domain:software-engineering (.86). So on AlpacaEval's
# unlabelled build prompts that the prototype tagger places in a class no corpus labels (advice,
# food, sport, ...) the heads are pulled to its distribution (soft targets at DISTILL_SCALE, this
# weight against the labelled loss). It costs the labelled sources: when the heads read the sentence
# embedding alone, Arena-Hard v2's out-of-fold top-1 (build side) was .81 -> .75 (task) and .81 ->
# .76 (domain) at 0.3, .74 and .74 at 1.0; 0.3 was the better of the two there and is kept.
DISTILL_WEIGHT = 0.3
DISTILL_SCALE = 50.0
UNLABELLED_SOURCE = "alpaca-eval"  # 805 instructions users gave chat models; its labels are source sets
# No threshold below one half: a calibrated probability under it says the tag is more likely wrong
# than right, and that is where queries unlike the labelled ones land (a refund question ->
# task:code-debugging .33, "Prove that there are infinitely many primes" -> domain:software-engineering
# .48). Out of fold, tags served at [.3, .5) were right 53% (task) and 27% (domain) of the time, while
# each level's precision as a whole passed the floor from .3. It is not a cure: "hi" still gets
# task:creative-writing at .51 (docs/TAGS.md).
MIN_THRESHOLD = 0.5
THRESHOLDS = tuple(round(t, 2) for t in np.arange(MIN_THRESHOLD, 0.96, 0.05))
RELIABILITY_BINS = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)
SEED = 0
ITERATIONS = 150


def prompt_truth(vocab: Vocabulary, prompts: list[Prompt], level: str) -> tuple[list[Prompt], np.ndarray]:
    """The prompts with a say at `level` (their label is some tag's alias there, or they are the level's
    own source, e.g. a rare Arena-Hard cluster: -1, always wrong), and each one's tag row (-1: none)."""
    from tagrouter.offline.vocab_build import SOURCE_LEVEL

    index = truth_index(vocab)
    out, truth = [], []
    for p in prompts:
        for source, label in p.labels.items():
            row = index.get((f"{source}:{label}", level))
            if row is not None or (level == "topic" and SOURCE_LEVEL.get(source) == "topic"):
                out.append(p)
                truth.append(-1 if row is None else row)
                break
    return out, np.array(truth, dtype=np.int64)


def anchor_texts(vocab: Vocabulary, taxonomy: Path = data.TAXONOMY_FILE) -> dict[str, list[str]]:
    """Each tag's description and, for a taxonomy tag, its examples."""
    examples = {t["name"]: t.get("examples", []) for t in json.loads(Path(taxonomy).read_text())["tags"]}
    return {t["name"]: [t["description"], *examples.get(t["name"], [])] for t in vocab.tags}


def _fit(x, y, w, anchors, penalty, torch, unlabelled=None):
    """W, b of one head by full-batch L-BFGS from W = anchors; `unlabelled` (x, target distributions):
    prompts without a label at this level, whose probabilities are pulled to the prototype tagger's."""
    xt, yt, wt = (torch.tensor(a) for a in (x, y, w))
    xu, qu = (torch.tensor(a) for a in unlabelled) if unlabelled is not None else (None, None)
    w0 = torch.tensor(anchors)
    weight = w0.clone().requires_grad_(True)
    bias = torch.zeros(len(anchors), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=ITERATIONS, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = SCALE * xt @ weight.T + bias
        loss = (torch.nn.functional.cross_entropy(logits, yt, reduction="none") * wt).sum() / wt.sum()
        loss = loss + penalty * ((weight - w0) ** 2).sum()
        if xu is not None:
            log_p = torch.nn.functional.log_softmax(SCALE * xu @ weight.T + bias, dim=1)
            loss = loss - DISTILL_WEIGHT * (qu * log_p).sum(dim=1).mean()
        loss.backward()
        return loss

    opt.step(closure)
    return weight.detach().numpy(), bias.detach().numpy()


def _group_weights(groups: np.ndarray) -> np.ndarray:
    """Each group (a corpus label, or a tag's anchor texts) weighs the same in total."""
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def _temperature(logits: np.ndarray, truth: np.ndarray) -> float:
    """The temperature minimising the log-loss of softmax(logits / T) on rows with a truth."""
    known = truth >= 0
    grid = np.exp(np.linspace(np.log(0.2), np.log(5.0), 161))
    losses = [-np.mean(np.log(softmax(logits[known] / t)[np.arange(known.sum()), truth[known]] + 1e-12)) for t in grid]
    return float(grid[int(np.argmin(losses))])


def served(probs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(the top tag, whether it is served) per row: the top tag at or above the threshold."""
    return probs.argmax(axis=1), probs.max(axis=1) >= threshold


def wilson_lower(right: int, n: int, z: float = WILSON_Z) -> float:
    """Lower confidence bound of a proportion of `right` out of `n` (0 when n is 0)."""
    if n == 0:
        return 0.0
    p = right / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float((centre - spread) / (1 + z * z / n))


def choose_threshold(probs: np.ndarray, truth: np.ndarray, floor: float = PRECISION_FLOOR) -> float:
    """The smallest of THRESHOLDS whose served tags' precision is at least `floor` by its lower
    bound (else the largest: the level then almost always abstains)."""
    top, _ = served(probs, 0.0)
    right = top == truth
    for t in THRESHOLDS:
        kept = probs.max(axis=1) >= t
        if wilson_lower(int(right[kept].sum()), int(kept.sum())) >= floor:
            return float(t)
    return float(THRESHOLDS[-1])


def reliability(confidence: np.ndarray, right: np.ndarray, bins=RELIABILITY_BINS) -> list[dict]:
    """Per confidence bin: queries, mean confidence, share right (empty bins left out)."""
    out = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        inside = (confidence >= lo) & ((confidence < hi) if hi < 1 else (confidence <= hi))
        if inside.any():
            out.append({"bin": [lo, hi], "queries": int(inside.sum()), "confidence": float(confidence[inside].mean()),
                        "right": float(right[inside].mean())})
    return out


def _fold(p: Prompt) -> int:
    return int(hashlib.sha256(f"fold/{p.corpus}/{p.id}".encode()).hexdigest(), 16) % FOLDS


def feature_mask(name: str, width: int) -> np.ndarray:
    """Per feature, its factor in FEATURE_SETS' `name`: the last layer alone is its block scaled back
    to unit length, the other blocks zeroed (so the served head's weight is zero there)."""
    if name == "all layers":
        return np.ones(width)
    block = width // FEATURE_LAYERS
    return np.concatenate([np.zeros(width - block), np.full(block, np.sqrt(FEATURE_LAYERS))])


def train_level(level: str, vocab: Vocabulary, prompts: list[Prompt], embed, featurize,
                anchors: dict[str, list[str]], torch):
    """One level's head, its temperature, threshold and out-of-fold record. `featurize`: the heads'
    input (the graph's features); `embed`: the sentence embedding, which the prototypes compare."""
    rows = np.flatnonzero(np.array([t["level"] == level for t in vocab.tags]))
    names = [vocab.tags[i]["name"] for i in rows]
    col = {r: c for c, r in enumerate(rows)}
    labelled, truth_rows = prompt_truth(vocab, prompts, level)
    truth = np.array([col.get(r, -1) for r in truth_rows], dtype=np.int64)
    full_x = featurize([p.text for p in labelled])
    full_anchor_x = [featurize(anchors[n]) for n in names]
    ay = np.concatenate([np.full(len(a), c) for c, a in enumerate(full_anchor_x)])
    folds = np.array([_fold(p) for p in labelled])
    sources = np.array([next(iter(p.labels)) for p in labelled])
    known = truth >= 0

    groups = np.array([f"{s}:{p.labels[s]}" for p, s in zip(labelled, sources)] + [f"anchor:{c}" for c in ay])
    # Build prompts without a label at this level (AlpacaEval's, Arena-Hard's below the topic level, ...):
    # the prototype tagger's distribution over the level (the vocabulary build's prototypes) is their target.
    taken = {id(p) for p in labelled}
    unlabelled_texts = [p.text for p in prompts if id(p) not in taken and UNLABELLED_SOURCE in p.labels]
    unlabelled_x = q = other = None
    if unlabelled_texts and DISTILL_WEIGHT > 0:
        q = softmax(DISTILL_SCALE * embed(unlabelled_texts) @ vocab.prototypes[rows].astype(np.float64).T)
        # only where the prototypes see a kind of work no corpus labels: the labelled classes learn from labels
        other = ~np.isin(q.argmax(axis=1), truth[known])
        unlabelled_x = featurize(unlabelled_texts)[other] if other.any() else None

    def fit(train_mask, penalty, mask):
        anchor_x = [a * mask for a in full_anchor_x]
        anchor_w = np.stack([a.mean(axis=0) / np.linalg.norm(a.mean(axis=0)) for a in anchor_x])
        rows = np.concatenate([train_mask & known, np.ones(len(ay), dtype=bool)])
        xs = np.concatenate([full_x[train_mask & known] * mask, *anchor_x])
        ys = np.concatenate([truth[train_mask & known], ay])
        distil = None if unlabelled_x is None else (unlabelled_x * mask, q[other])
        return _fit(xs, ys, _group_weights(groups[rows]), anchor_w, penalty, torch, distil)

    best, tried = None, []
    for features in FEATURE_SETS:
        mask = feature_mask(features, full_x.shape[1])
        for penalty in PENALTIES:
            oof = np.zeros((len(labelled), len(names)))
            for k in range(FOLDS):
                w, b = fit(folds != k, penalty, mask)
                oof[folds == k] = SCALE * (full_x[folds == k] * mask) @ w.T + b
            temperature = _temperature(oof, truth)
            probs = softmax(oof / temperature)
            loss = float(-np.mean(np.log(probs[known, truth[known]] + 1e-12)))
            right = probs.argmax(axis=1) == truth
            tried.append({"features": features, "penalty": penalty, "log_loss": round(loss, 4),
                          "top1": round(float(right.mean()), 4),
                          "top1_by_source": {src: round(float(right[sources == src].mean()), 4)
                                             for src in sorted(set(sources))}})
            if best is None or loss < best[0] - 1e-9:
                best = (loss, features, penalty, temperature, probs)
    loss, features, penalty, temperature, probs = best
    threshold = choose_threshold(probs, truth)
    top, kept = served(probs, threshold)
    mask = feature_mask(features, full_x.shape[1])
    w, b = fit(np.ones(len(labelled), dtype=bool), penalty, mask)
    head = Head(level, names, np.round(w * mask * SCALE / temperature, 6).astype(np.float32),
                np.round(b / temperature, 6).astype(np.float32), threshold)
    record = {"prompts": int(len(labelled)), "with_tag": int(known.sum()), "classes_with_prompts":
              int(len(np.unique(truth[known]))), "features": features, "penalty": penalty, "tried": tried,
              "temperature": round(temperature, 4),
              "out_of_fold": {"log_loss": round(float(loss), 4), "top1": round(float((top == truth).mean()), 4),
                              "coverage": round(float(kept.mean()), 4),
                              "precision": round(float((top == truth)[kept].mean()), 4) if kept.any() else None,
                              "reliability": reliability(probs.max(axis=1), top == truth)},
              "out_of_fold_top1_by_source": {src: round(float((top == truth)[sources == src].mean()), 4)
                                             for src in sorted(set(sources))}}
    return head, record


def train(vocab_dir: Path = data.VOCABULARY_DIR, model_dir: Path | None = None, raw_dir: Path | None = None) -> TaggerHeads:
    import torch

    from services.common.settings import TaggerSettings
    from tagrouter.core.encoder import Encoder

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    vocab = Vocabulary.load(vocab_dir)
    raw_dir = Path(raw_dir or paths.raw_dir())
    encoder = Encoder(model_dir or TaggerSettings.from_env().model_dir)
    prompts = [p for c in DEFAULT_CORPORA for p in read_corpus(raw_dir / c)]
    fraction = (vocab.build_info or {}).get("params", {}).get("held_out_fraction", HELD_OUT_FRACTION)
    build, held = split_held_out(prompts, fraction)
    held_texts = {p.text for p in held}
    build = sample([p for p in build if p.text not in held_texts], MAX_PER_LABEL)
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def encoded(texts: list[str], part: int) -> np.ndarray:
        new = sorted({t for t in texts if t not in cache})
        if new:
            embeddings, features = encoder.embed_with_features(new)
            for t, e, f in zip(new, embeddings, features):
                cache[t] = (np.round(e, 4).astype(np.float64), np.round(f, 4).astype(np.float64))
        return np.stack([cache[t][part] for t in texts])

    def embed(texts: list[str]) -> np.ndarray:
        return encoded(texts, 0)

    def featurize(texts: list[str]) -> np.ndarray:
        return encoded(texts, 1)

    anchors = anchor_texts(vocab)
    heads, records = {}, {}
    for level in LEVELS:
        heads[level], records[level] = train_level(level, vocab, build, embed, featurize, anchors, torch)
    record = {"command": "make tagger-heads", "vocabulary": vocab.version, "build_prompts": len(build),
              "params": {"scale": SCALE, "penalties": list(PENALTIES), "folds": FOLDS, "max_per_label": MAX_PER_LABEL,
                         "precision_floor": PRECISION_FLOOR, "min_threshold": MIN_THRESHOLD, "wilson_z": WILSON_Z,
                         "seed": SEED, "iterations": ITERATIONS,
                         "distill_weight": DISTILL_WEIGHT, "feature_sets": list(FEATURE_SETS)},
              "levels": records}
    return TaggerHeads.build(heads, record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=Path, default=data.VOCABULARY_DIR, help="vocabulary folder (heads go beside it)")
    parser.add_argument("--raw", type=Path, default=None, help="raw corpora folder (default ../shared/data/raw)")
    args = parser.parse_args()
    heads = train(args.vocab, raw_dir=args.raw)
    heads.save(args.vocab)
    for level, r in heads.record["levels"].items():
        print(f"{level}: threshold {heads.heads[level].threshold}, out-of-fold {r['out_of_fold']}"[:300])
    print(f"wrote {args.vocab}/heads.npz, heads.json: version {heads.version}")


if __name__ == "__main__":
    main()
