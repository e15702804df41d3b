"""``python -m acme_core.cli``: the ``acme`` command."""

import sys

from acme_core.cli import main

sys.exit(main())
