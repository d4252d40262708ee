"""Stand-ins for paths the manifests name inside the image, so the services' settings can be read here."""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path


@functools.cache
def model_dir() -> Path:
    """A folder holding a model.onnx, for a manifest's TAGROUTER_MODEL_DIR (the Dockerfile builds the
    model there; the settings check only that the file is present)."""
    folder = Path(tempfile.mkdtemp(prefix="stand-in-model-"))
    (folder / "model.onnx").write_bytes(b"")
    return folder
