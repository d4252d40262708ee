"""`python -m services.tagger`: the tagger service (the container entry point)."""
import sys

from services.common.server import main
from services.tagger.app import create

sys.exit(main("tagger", create))
