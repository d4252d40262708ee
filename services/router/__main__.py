"""`python -m services.router`: the router service (the container entry point)."""
import sys

from services.common.server import main
from services.router.app import create

sys.exit(main("router", create, flags={"--tagger-addr": "TAGGER_ADDR", "--scorer-addr": "SCORER_ADDR"}))
