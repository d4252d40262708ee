"""`python -m services.router`: the same as `tagrouter serve router` (the container entry point)."""
import sys

from tagrouter.cli import main

sys.exit(main(["serve", "router", *sys.argv[1:]]))
