"""The layout's rules hold, and breaking one fails: import contracts, the router without onnxruntime,
no module over 400 lines outside generated code."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
MAX_LINES = 400


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def tree_copy(tmp_path):
    """The packages and their contracts, copied where a test may break them."""
    for name in ("tagrouter", "services"):
        shutil.copytree(REPO_ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    return tmp_path


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="lint-imports is not installed (the dev extra)")
def test_the_contracts_hold_and_a_router_importing_the_tagger_breaks_them(tree_copy):
    assert lint_imports(tree_copy).returncode == 0
    servicer = tree_copy / "services" / "router" / "servicer.py"
    servicer.write_text(servicer.read_text() + "\nimport services.tagger.servicer  # noqa: E402,F401\n")
    broken = lint_imports(tree_copy)
    assert broken.returncode != 0
    assert "services.router.servicer -> services.tagger.servicer" in broken.stdout


@pytest.mark.parametrize("module", ["services.router.app", "services.scorer.app"])
def test_router_and_scorer_load_no_onnxruntime(module):
    code = f"import {module}, sys; assert 'onnxruntime' not in sys.modules and 'tokenizers' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_no_module_is_over_400_lines_outside_generated_code():
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:  # not a git checkout: read the tree
        tracked = [str(p.relative_to(REPO_ROOT)) for p in REPO_ROOT.rglob("*.py") if ".venv" not in p.parts]
    long = {path: n for path in tracked if "_pb2" not in path
            and (n := len((REPO_ROOT / path).read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_an_installed_package_finds_its_vocabulary_and_starter_weights(tmp_path):
    """Built as a wheel, installed elsewhere and run from elsewhere: the data comes with the package."""
    target = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                            "--target", str(target), str(REPO_ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    code = ("import tagrouter.data as d, tagrouter.core.vocabulary as v, tagrouter.core.weights as w; "
            f"assert str(d.VOCABULARY_DIR).startswith({str(target)!r}); "
            "print(len(v.Vocabulary.load(d.VOCABULARY_DIR).names), len(w.Weights.load(d.STARTER_WEIGHTS_FILE).models))")
    done = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {code}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    tags, models = map(int, done.stdout.split())
    assert tags > 100 and models >= 2


def test_every_limit_of_the_core_is_in_the_operations_table():
    from tagrouter.core import limits

    table = (REPO_ROOT / "docs" / "OPERATIONS.md").read_text().split("## Limits", 1)[1].split("\n## ", 1)[0]
    names = [n for n in vars(limits) if n.startswith("MAX_")]
    assert names, "no limits found"
    missing = [n for n in names if f"`{n}`" not in table]
    assert not missing, f"limits missing from docs/OPERATIONS.md's table: {missing}"
