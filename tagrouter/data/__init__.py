"""Package data, found through importlib.resources so an installed package finds it too:
the tag vocabulary, the taxonomy it is built from and the starter weights."""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

_ROOT = Path(str(files(__name__)))

VOCABULARY_DIR = _ROOT / "vocabulary"
TAXONOMY_FILE = _ROOT / "taxonomy.json"
STARTER_WEIGHTS_FILE = _ROOT / "starter_weights.json"
# The same suite fitted on the trained heads' tags (TAGROUTER_TAGGER_HEADS=true): weights count each tag
# as the tagger that fitted them assigned it, so a scorer behind the heads starts from these.
HEADS_STARTER_WEIGHTS_FILE = _ROOT / "starter_weights_heads.json"


def starter_weights(heads: bool) -> Path:
    """The starter weights fitted on the tags of the prototype tagger, or of the trained heads."""
    return HEADS_STARTER_WEIGHTS_FILE if heads else STARTER_WEIGHTS_FILE


# Built, not packaged: `make model` exports the encoder here, relative to the working directory
# (a source checkout); an image or an installed package names its own folder (TAGROUTER_MODEL_DIR).
DEFAULT_MODEL_DIR = Path("build") / "model"
