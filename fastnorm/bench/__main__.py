"""``python -m fastnorm.bench``."""

import sys

from .cli import main

sys.exit(main())
