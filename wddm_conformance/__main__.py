"""``python -m wddm_conformance`` is the ``wddm-conformance`` command."""

import sys

from .cli import main

sys.exit(main())
