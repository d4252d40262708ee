"""`python -m tagrouter.cli ...`"""
import sys

from tagrouter.cli import main

sys.exit(main())
