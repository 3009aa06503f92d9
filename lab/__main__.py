"""``python -m lab`` is the same as the ``lab`` command."""

from lab.cli import main

raise SystemExit(main())
