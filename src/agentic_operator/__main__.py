"""``python -m agentic_operator``."""

import sys

from agentic_operator.cli import main

sys.exit(main())
