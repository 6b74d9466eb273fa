"""`python -m lw_baselines METHOD --task T` (the same as `lw-baseline`)."""

import sys

from lw_baselines.cli import main

sys.exit(main())
