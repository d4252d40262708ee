"""The scorer's default weights against the tagger it serves: weights fitted on one tagger's tags
mean little under the other's, so TAGROUTER_TAGGER_HEADS must agree on the two (docs/TAGS.md)."""
from __future__ import annotations

from tagrouter import data

STARTERS = {data.STARTER_WEIGHTS_FILE: False, data.HEADS_STARTER_WEIGHTS_FILE: True}  # file: fitted on the heads' tags


def problems(tagger, scorer) -> list[str]:
    """tagger, scorer: their settings (None when the service did not render or would not start)."""
    if tagger is None or scorer is None or scorer.weights_file not in STARTERS \
            or STARTERS[scorer.weights_file] == tagger.use_heads:
        return []
    return [f"the tagger {'tags with the trained heads' if tagger.use_heads else 'tags by prototypes'}, but the "
            f"scorer starts from {scorer.weights_file.name}, fitted on the other tagger's tags: set "
            "TAGROUTER_TAGGER_HEADS alike on both"]
