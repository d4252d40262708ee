"""`python -m services.scorer`: the scorer service (the container entry point)."""
import sys

from services.common.server import main
from services.scorer.app import create

sys.exit(main("scorer", create))
