"""`tagrouter vocab build`: the canonical tag vocabulary, built reproducibly from query corpora.

In the spirit of the paper's tag normalisation (PhraseBERT + DBSCAN over LLM-generated tags),
with the labels the corpora already carry standing in for generated tags:

1. Candidates: the project's taxonomy (task and domain tags, each with a description and
   examples), and Arena-Hard's topic clusters of the corpora's build split (ROUTING.md;
   `tagrouter.offline.corpora`). Task and domain tags come from the taxonomy only: a corpus's
   task-level label (Arena-Hard v2 subcategory, Vicuna-bench category, RouterBench benchmark,
   AlpacaEval source set) names where a prompt came from, so it is at most an alias of the
   taxonomy tag that declares it (`corpus_labels`, the trained tagger's training label) and
   otherwise left out (`unmapped` in the build record).
2. Normalise: a label's name is `<level>:<slug>`; equal names merge at once.
3. Embed: a candidate's vector is the normalised mean embedding of its texts (its
   description or label, its examples, up to MAX_PROMPTS_PER_LABEL of its build prompts).
4. Drop the diffuse: a label whose prompts do not cluster (mean cosine to their centroid
   below MIN_COHERENCE) names where prompts came from, not what they ask, and is dropped.
5. Merge near-duplicates: complete-linkage agglomerative clustering of the candidates of each
   level by cosine similarity, down to MERGE_THRESHOLD[level]; a cluster holds at most one
   taxonomy tag, whose name, description and level it keeps (else the candidate with most prompts).
6. Drop the too rare: a corpus-derived tag that fewer than MIN_COUNT build prompts carry
   (among their top TAGS_PER_LEVEL of its level) is dropped; taxonomy tags always stay.
7. Each canonical tag's prototype is the normalised mean of its members' vectors.

Every step is deterministic (sorted inputs, stable orders, no random seeds); embeddings are
rounded to 4 decimals before any comparison and prototypes are saved rounded, so the artifact
is byte-identical across runs and CPUs. The artifact records the sha256 of every input file
and the build parameters (`build` in tags.json); `tests/unit/test_vocab.py` checks them.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path

import numpy as np

from tagrouter import data
from tagrouter.core.tagging import LEVELS, slug
from tagrouter.core.vocabulary import Vocabulary
from tagrouter.offline import paths
from tagrouter.offline.corpora import (
    DEFAULT_CORPORA,
    CorpusError,
    Prompt,
    read_corpus,
    read_text,
    sample,
    sha256_file,
    split_held_out,
)

TAXONOMY_FILE = data.TAXONOMY_FILE
RAW_DIR = paths.raw_dir()
# Package data is keyed relative to the folder holding the `tagrouter` package (a checkout or site-packages).
PACKAGE_PARENT = Path(str(files("tagrouter"))).resolve().parent

# Which level a corpus's labels belong to, and how a label reads as a description.
SOURCE_LEVEL = {"arena-hard": "topic", "arena-hard-v2": "task", "vicuna": "task", "routerbench": "task",
                "alpaca-eval": "task"}
SOURCE_DESCRIPTION = {
    "arena-hard": "Arena-Hard topic cluster: {label}",
    "arena-hard-v2": "Arena-Hard v2 subcategory: {label}",
    "vicuna": "Vicuna-bench category: {label}",
    "routerbench": "RouterBench task: {label}",
    "alpaca-eval": "AlpacaEval source set: {label}",
}


class VocabularyError(ValueError):
    """An input of the build is unusable; the message names the file."""


@dataclass(frozen=True)
class BuildParams:
    """Everything besides the input files that decides the artifact (recorded in it)."""

    merge_threshold: dict = field(default_factory=lambda: {"task": 0.75, "domain": 0.75, "topic": 0.6})
    min_coherence: float = 0.35  # labels with >= COHERENCE_MIN_PROMPTS prompts less coherent than this are dropped
    coherence_min_prompts: int = 5
    min_count: int = 2  # build prompts that must carry a corpus-derived tag
    tags_per_level: int = 2  # as the tagger serves (TAGROUTER_TAGS_PER_LEVEL)
    min_score: float = 0.15  # as the tagger serves (TAGROUTER_TAG_MIN_SCORE)
    max_prompts_per_label: int = 32
    held_out_fraction: float = 0.3
    decimals: int = 4


@dataclass
class Candidate:
    name: str
    level: str
    description: str
    texts: list[str]  # description/label first, then examples and build prompts
    aliases: list[str]  # "source:label" of every corpus label it stands for
    from_taxonomy: bool
    prompts: int = 0  # build prompts it holds
    # A taxonomy tag's declared corpus labels: one list of prompts each. The vector is the mean of
    # the parts' mean vectors, so fifty benchmark prompts do not drown the description.
    parts: list[list[str]] = field(default_factory=list)
    vector: np.ndarray | None = None

    def all_texts(self) -> list[str]:
        return self.texts + [t for part in self.parts for t in part]


@dataclass
class BuildReport:
    """What the build did, for the CLI and docs/TAGS.md."""

    candidates: dict[str, int] = field(default_factory=dict)  # level -> candidates after name normalisation
    diffuse: list[str] = field(default_factory=list)
    merged: dict[str, list[str]] = field(default_factory=dict)  # canonical -> candidates merged into it
    rare: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)  # task-level corpus labels no taxonomy tag declares
    kept: dict[str, int] = field(default_factory=dict)  # level -> canonical tags


# --- inputs --------------------------------------------------------------------------------
def read_taxonomy(path: Path) -> list[dict]:
    try:
        doc = json.loads(read_text(path))
    except CorpusError as err:
        raise VocabularyError(str(err)) from None
    except json.JSONDecodeError as err:
        raise VocabularyError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    tags = doc.get("tags") if isinstance(doc, dict) else None
    if not isinstance(tags, list) or not tags:
        raise VocabularyError(f"{path}: key 'tags' must be a non-empty list")
    seen = set()
    for i, tag in enumerate(tags):
        if not isinstance(tag, dict) or not all(isinstance(tag.get(k), str) and tag[k].strip()
                                                for k in ("name", "level", "description")):
            raise VocabularyError(f"{path}: tags[{i}] needs non-empty 'name', 'level' and 'description'")
        if tag["level"] not in LEVELS or tag["level"] == "attr":
            raise VocabularyError(f"{path}: tags[{i}] ({tag['name']}): level must be task, domain or topic")
        if not tag["name"].startswith(tag["level"] + ":"):
            raise VocabularyError(f"{path}: tags[{i}]: name {tag['name']!r} must start with '{tag['level']}:'")
        if tag["name"] in seen:
            raise VocabularyError(f"{path}: tags[{i}]: duplicate name {tag['name']!r}")
        for label in tag.get("corpus_labels", []):
            if not isinstance(label, str) or label.partition(":")[0] not in SOURCE_LEVEL:
                raise VocabularyError(f"{path}: tags[{i}]: corpus label {label!r} must be '<source>:<label>' with "
                                      f"source one of {', '.join(sorted(SOURCE_LEVEL))}")
        seen.add(tag["name"])
    return tags


def read_corpora(paths: list[Path]) -> list[Prompt]:
    prompts: list[Prompt] = []
    if not paths:
        raise VocabularyError("no corpus files given")
    for path in paths:
        try:
            prompts.extend(read_corpus(path))
        except CorpusError as err:
            raise VocabularyError(str(err)) from None
    return prompts


def input_hashes(taxonomy: Path, corpora: list[Path], raw_dir: Path) -> dict[str, str]:
    """sha256 of every input file, keyed by its path relative to the repo or the raw folder."""
    out = {}
    for path in [Path(taxonomy), *map(Path, corpora)]:
        path = path.resolve()
        for root in (PACKAGE_PARENT, Path(raw_dir).resolve()):
            if path.is_relative_to(root):
                key = str(path.relative_to(root))
                break
        else:
            key = path.name
        out[key] = sha256_file(path)
    return out


# --- the build -----------------------------------------------------------------------------
def label_text(label: str) -> str:
    return re.sub(r"[_-]+", " ", label).strip()


def candidates_from(taxonomy: list[dict], build: list[Prompt], params: BuildParams,
                    unmapped: list[str] | None = None) -> list[Candidate]:
    """Taxonomy tags and corpus labels as candidates; equal `<level>:<slug>` names merged.

    A taxonomy tag's `corpus_labels` ("source:label") are hand-declared evidence: that label's
    prompts join the tag's texts (as one part: see `Candidate.parts`); at the label's own level
    the label is also an alias of the tag and gets no candidate of its own.
    """
    by_label: dict[tuple[str, str], list[str]] = {}
    for p in sample(build, params.max_prompts_per_label):
        for source, label in p.labels.items():
            by_label.setdefault((source, label), []).append(p.text)
    out: dict[str, Candidate] = {}
    claimed: set[tuple[str, str]] = set()
    for tag in taxonomy:
        c = Candidate(tag["name"], tag["level"], tag["description"], [tag["description"], *tag.get("examples", [])],
                      [], True)
        for ref in tag.get("corpus_labels", []):
            key = tuple(ref.split(":", 1))
            prompts = by_label.get(key, [])
            if prompts:
                c.parts.append(prompts)
                c.prompts += len(prompts)
            c.aliases.append(ref)
            if SOURCE_LEVEL[key[0]] == tag["level"]:
                claimed.add(key)
        out[tag["name"]] = c
    for (source, label), prompts in sorted(by_label.items()):
        if (source, label) in claimed:
            continue
        level = SOURCE_LEVEL[source]
        name = f"{level}:{slug(label)}"
        alias = f"{source}:{label}"
        if level != "topic":  # a dataset's name is no kind of work: only the taxonomy names tasks
            if unmapped is not None:
                unmapped.append(alias)
            continue
        if name in out:
            (out[name].parts.append if out[name].from_taxonomy else out[name].texts.extend)(prompts)
            out[name].aliases.append(alias)
            out[name].prompts += len(prompts)
        else:
            description = SOURCE_DESCRIPTION[source].format(label=label)
            out[name] = Candidate(name, level, description, [label_text(label), *prompts], [alias], False,
                                  len(prompts))
    return sorted(out.values(), key=lambda c: (LEVELS.index(c.level), not c.from_taxonomy, c.name))


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1)


def complete_linkage(sim: np.ndarray, threshold: float, cannot_link: np.ndarray) -> list[list[int]]:
    """Clusters of items whose every pair has similarity >= threshold (agglomerative, complete linkage).

    cannot_link: [n] bool; two clusters that both hold such an item never merge. Deterministic:
    the most similar pair merges first, ties broken by the lowest index.
    """
    n = len(sim)
    link = sim.astype(np.float64).copy()
    np.fill_diagonal(link, -np.inf)
    alive = np.ones(n, dtype=bool)
    pinned = cannot_link.copy()
    members = [[i] for i in range(n)]
    while True:
        blocked = pinned[:, None] & pinned[None, :]
        masked = np.where(blocked | ~alive[:, None] | ~alive[None, :], -np.inf, link)
        flat = int(np.argmax(masked))
        a, b = divmod(flat, n)
        if masked[a, b] < threshold:
            break
        a, b = min(a, b), max(a, b)
        members[a] += members[b]
        members[b] = []
        link[a, :] = np.minimum(link[a, :], link[b, :])
        link[:, a] = link[a, :]
        link[a, a] = -np.inf
        alive[b] = False
        pinned[a] |= pinned[b]
    return [sorted(m) for m in members if m]


def build_vocabulary(encoder, taxonomy: Path = TAXONOMY_FILE, corpora: list[Path] | None = None,
                     raw_dir: Path = RAW_DIR, params: BuildParams = BuildParams()) -> tuple[Vocabulary, BuildReport]:
    """The canonical vocabulary from the taxonomy and the corpora's build split."""
    corpora = [Path(raw_dir) / c for c in DEFAULT_CORPORA] if corpora is None else [Path(c) for c in corpora]
    tax = read_taxonomy(taxonomy)
    prompts = read_corpora(corpora)
    build, held = split_held_out(prompts, params.held_out_fraction)
    held_texts = {p.text for p in held}  # the same prompt in two corpora (Vicuna's are in AlpacaEval) stays out
    build = [p for p in build if p.text not in held_texts]
    report = BuildReport()
    cands = candidates_from(tax, build, params, report.unmapped)

    # Embed every distinct text once, rounded so later comparisons do not depend on the CPU.
    texts = sorted({t for c in cands for t in c.all_texts()})
    row = {t: i for i, t in enumerate(texts)}
    vectors = np.round(encoder.embed(texts), params.decimals).astype(np.float64)
    kept: list[Candidate] = []
    for c in cands:
        own = vectors[[row[t] for t in c.texts]]
        c.vector = _unit(np.mean([_unit(own.mean(axis=0))] +
                                 [_unit(vectors[[row[t] for t in part]].mean(axis=0)) for part in c.parts], axis=0))
        if not c.from_taxonomy and c.prompts >= params.coherence_min_prompts:
            prompt_vectors = own[len(c.texts) - c.prompts:]
            coherence = float((prompt_vectors @ _unit(prompt_vectors.mean(axis=0))).mean())
            if coherence < params.min_coherence:
                report.diffuse.append(f"{c.name} ({coherence:.2f})")
                continue
        kept.append(c)

    # Merge near-duplicates per level.
    canon: list[dict] = []
    protos: list[np.ndarray] = []
    for level in LEVELS[:3]:
        group = [c for c in kept if c.level == level]
        if not group:
            continue
        report.candidates[level] = len(group)
        x = np.stack([c.vector for c in group])
        clusters = complete_linkage(np.round(x @ x.T, params.decimals), params.merge_threshold[level],
                                    np.array([c.from_taxonomy for c in group]))
        for members in clusters:
            ms = [group[i] for i in members]
            head = max(ms, key=lambda c: (c.from_taxonomy, c.prompts, [-ord(ch) for ch in c.name]))
            aliases = sorted({a for m in ms for a in m.aliases} | {m.name for m in ms if m is not head})
            if len(ms) > 1:
                report.merged[head.name] = sorted(m.name for m in ms if m is not head)
            canon.append({"name": head.name, "level": level, "description": head.description, "aliases": aliases,
                          "from_taxonomy": head.from_taxonomy, "prompts": sum(m.prompts for m in ms)})
            protos.append(_unit(np.mean([m.vector for m in ms], axis=0)))
    prototypes = np.round(np.stack(protos), params.decimals)

    # Drop the too rare: how many build prompts carry each tag as the tagger would serve it.
    prompt_rows = [row[p.text] for p in sample(build, params.max_prompts_per_label) if p.text in row]
    sims = vectors[sorted(set(prompt_rows))] @ prototypes.T
    levels = np.array([LEVELS.index(t["level"]) for t in canon])
    counts = np.zeros(len(canon), dtype=np.int64)
    for lv in np.unique(levels):
        cols = np.flatnonzero(levels == lv)
        top = cols[np.argsort(-sims[:, cols], axis=1, kind="stable")[:, : params.tags_per_level]]
        ok = np.take_along_axis(sims, top, axis=1) >= params.min_score
        np.add.at(counts, top[ok], 1)
    keep = [i for i, t in enumerate(canon) if t["from_taxonomy"] or counts[i] >= params.min_count]
    report.rare = [canon[i]["name"] for i in range(len(canon)) if i not in set(keep)]
    tags = [{"name": canon[i]["name"], "level": canon[i]["level"], "description": canon[i]["description"],
             "aliases": canon[i]["aliases"], "count": int(counts[i])} for i in keep]
    for level in LEVELS[:3]:
        report.kept[level] = sum(t["level"] == level for t in tags)
    build_info = {"inputs": input_hashes(taxonomy, corpora, raw_dir), "params": asdict(params),
                  "encoder": "all-MiniLM-L6-v2 int8 ONNX (tagrouter.dev.export_model)",
                  "candidates": report.candidates,
                  "dropped": {"diffuse": report.diffuse, "rare": report.rare, "unmapped": report.unmapped}}
    return Vocabulary.build(tags, prototypes[keep].astype(np.float32), build_info), report
