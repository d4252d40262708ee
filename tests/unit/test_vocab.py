"""The tag vocabulary: deterministic build, inputs recorded and checked, errors that name the file."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest

from services.common.settings import DEFAULT_MODEL_DIR, DEFAULT_VOCAB_DIR
from tagrouter.core.vocabulary import PROTOTYPES_FILE, TAGS_FILE, Vocabulary
from tagrouter.offline.corpora import DEFAULT_CORPORA, Prompt, sample, sha256_file, split_held_out
from tagrouter.offline.vocab_build import PACKAGE_PARENT, RAW_DIR, BuildParams, complete_linkage
from tests.conftest import REPO_ROOT

needs_raw = pytest.mark.skipif(not RAW_DIR.exists(), reason=f"{RAW_DIR} is absent")
needs_model = pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "model.onnx").exists(), reason="run `make model`")


def _has_vnni() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and ("avx512_vnni" in line.split() or "avx_vnni" in line.split())
                       for line in f)
    except OSError:
        return False


# The committed vocabulary was built where onnxruntime's int8 kernels use VNNI (exact 32-bit sums). On a
# CPU without it (AVX2 alone) they sum in 16 bits that can saturate: the embeddings move (mean cosine to
# fp32 .9917 against .9931, docs/BENCHMARKS.md "Fourth step") and the clustering draws other tags, so
# the bytes cannot match there.
needs_vnni = pytest.mark.skipif(not _has_vnni(), reason="no VNNI on this CPU: its int8 kernels give other embeddings "
                                "than those the committed vocabulary was built with")


def committed() -> dict:
    return json.loads((DEFAULT_VOCAB_DIR / TAGS_FILE).read_text())


def test_committed_vocabulary_loads_and_records_its_build():
    vocab = Vocabulary.load(DEFAULT_VOCAB_DIR)
    levels = {t["level"] for t in vocab.tags}
    assert levels == {"task", "domain", "topic"}
    assert vocab.build_info["params"] == asdict(BuildParams()), "the artifact was built with other parameters: make vocab"
    assert np.allclose(np.linalg.norm(vocab.prototypes, axis=1), 1, atol=1e-3)


@needs_raw
def test_committed_vocabulary_matches_the_hash_of_its_inputs():
    inputs = committed()["build"]["inputs"]
    assert set(inputs) == {"tagrouter/data/taxonomy.json", *DEFAULT_CORPORA}
    for name, digest in inputs.items():
        path = PACKAGE_PARENT / name if name.startswith("tagrouter/") else RAW_DIR / name
        assert sha256_file(path) == digest, f"{name} changed since the vocabulary was built: run `make vocab`"


@needs_raw
@needs_model
@needs_vnni
def test_vocab_build_reproduces_the_committed_artifact_byte_for_byte(tmp_path):
    out = tmp_path / "vocabulary"
    run = subprocess.run([sys.executable, "-m", "tagrouter.cli", "vocab", "build", "--out", str(out)],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    for name in (TAGS_FILE, PROTOTYPES_FILE):
        assert (out / name).read_bytes() == (DEFAULT_VOCAB_DIR / name).read_bytes(), f"{name} differs: run `make vocab`"


@pytest.mark.parametrize("content, expected", [
    (None, "no such file"),
    (b"", "empty"),
    (b"  \n", "empty"),
    (b'{"uid": "a", "cluster": "x", "prompt": "caf\xe9"}\n', "not UTF-8"),
    (b'{"uid": "a", "cluster": "x"\n', "not valid JSON"),
    (b'{"uid": "a", "prompt": "hello"}\n', "missing key 'cluster'"),
])
@needs_model
def test_vocab_build_refuses_bad_corpus_files_naming_them(tmp_path, content, expected):
    path = tmp_path / "arena-hard-v0.1_question.jsonl"
    if content is not None:
        path.write_bytes(content)
    run = subprocess.run([sys.executable, "-m", "tagrouter.cli", "vocab", "build", "--corpus", str(path),
                          "--out", str(tmp_path / "out")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert str(path) in run.stderr and expected in run.stderr
    assert not (tmp_path / "out").exists()


@needs_model
def test_vocab_build_refuses_an_unknown_corpus_and_a_bad_taxonomy(tmp_path):
    unknown = tmp_path / "my_queries.jsonl"
    unknown.write_text('{"q": "hi"}\n')
    run = subprocess.run([sys.executable, "-m", "tagrouter.cli", "vocab", "build", "--corpus", str(unknown),
                          "--out", str(tmp_path / "out")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and str(unknown) in run.stderr and "unknown corpus" in run.stderr
    taxonomy = tmp_path / "taxonomy.json"
    taxonomy.write_bytes(b"\xff\xfe{}")
    run = subprocess.run([sys.executable, "-m", "tagrouter.cli", "vocab", "build", "--taxonomy", str(taxonomy),
                          "--out", str(tmp_path / "out")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and str(taxonomy) in run.stderr and "not UTF-8" in run.stderr


def test_complete_linkage_merges_only_when_every_pair_is_close():
    sim = np.array([[1, .9, .5, .1], [.9, 1, .85, .1], [.5, .85, 1, .1], [.1, .1, .1, 1]])
    assert complete_linkage(sim, 0.8, np.zeros(4, bool)) == [[0, 1], [2], [3]]
    # two pinned (taxonomy) items never share a cluster
    assert complete_linkage(sim, 0.8, np.array([True, True, False, False])) == [[0], [1, 2], [3]]
    assert complete_linkage(sim, 0.05, np.zeros(4, bool)) == [[0, 1, 2, 3]]


def test_held_out_split_is_deterministic_and_keeps_one_of_each_pair():
    prompts = [Prompt("c", str(i), f"text {i}", {"s": f"label{i // 2}"}) for i in range(40)]
    build, held = split_held_out(prompts)
    assert split_held_out(list(reversed(prompts)))[1] == list(reversed(held))
    assert len(held) == 20 and {p.labels["s"] for p in held} == {p.labels["s"] for p in build}
    assert len(sample(prompts, 1)) == 20
