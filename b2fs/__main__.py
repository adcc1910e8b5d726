"""``python -m b2fs``: the same as the ``b2fs`` command."""

from b2fs.cli.main import main

raise SystemExit(main())
