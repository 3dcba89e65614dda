"""`python -m orchestrator` is the `dockyard` command."""

from .cli.main import main

raise SystemExit(main())
