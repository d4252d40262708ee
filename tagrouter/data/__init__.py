"""Package data, found through importlib.resources so an installed package finds it too:
the tag vocabulary, the taxonomy it is built from and the starter weights."""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

_ROOT = Path(str(files(__name__)))

VOCABULARY_DIR = _ROOT / "vocabulary"
TAXONOMY_FILE = _ROOT / "taxonomy.json"
STARTER_WEIGHTS_FILE = _ROOT / "starter_weights.json"

# Built, not packaged: `make model` exports the encoder here, relative to the working directory
# (a source checkout); an image or an installed package names its own folder (TAGROUTER_MODEL_DIR).
DEFAULT_MODEL_DIR = Path("build") / "model"
