"""`python -m tracejudge.processor.cli`: the `tracejudge` command."""

import sys

from tracejudge.processor.cli import main

sys.exit(main())
