"""Where the offline commands find the shared routing data: never relative to this file.

`TAGROUTER_SHARED_DIR` names the folder holding `data/raw/` and `data/suites/`; unset, it is
`../shared` under the working directory (a source checkout beside the shared folder).
Every command also takes the folder it needs as an argument.
"""
from __future__ import annotations

import os
from pathlib import Path

SHARED_ENV = "TAGROUTER_SHARED_DIR"


def shared_dir() -> Path:
    return Path(os.environ.get(SHARED_ENV, "").strip() or Path("..") / "shared")


def raw_dir() -> Path:
    """The public corpora with provenance (`shared/data/raw`)."""
    return shared_dir() / "data" / "raw"


def suites_dir() -> Path:
    """The routing suites (`shared/data/suites`)."""
    return shared_dir() / "data" / "suites"


def require_dir(path: Path, what: str) -> Path:
    """`path` when it is a folder, else a clear error naming it and how to point elsewhere."""
    if not Path(path).is_dir():
        raise FileNotFoundError(f"{what}: no folder {path}; pass it as an argument or set {SHARED_ENV}")
    return Path(path)
