"""`python -m services.tagger`: the same as `tagrouter serve tagger` (the container entry point)."""
import sys

from tagrouter.cli import main

sys.exit(main(["serve", "tagger", *sys.argv[1:]]))
