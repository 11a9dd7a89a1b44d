"""`python -m monitor` is the same as the `monitor` command."""

from monitor.cli.main import main

raise SystemExit(main())
