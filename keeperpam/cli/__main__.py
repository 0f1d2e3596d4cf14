"""Entry point for ``python -m keeperpam.cli``."""

from keeperpam.cli import main

raise SystemExit(main())
