"""`python -m services.scorer`: the same as `tagrouter serve scorer` (the container entry point)."""
import sys

from tagrouter.cli import main

sys.exit(main(["serve", "scorer", *sys.argv[1:]]))
