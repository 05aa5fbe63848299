"""``python -m rtbus.cli``: the ``rtbus`` command."""

import sys

from . import main

sys.exit(main())
