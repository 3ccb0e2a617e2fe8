"""`python -m server.cli`: the same command as `phasegate`."""

import sys

from . import main

sys.exit(main())
