"""``python -m llmfeatures ...``: the command line of :mod:`llmfeatures.cli`."""

from llmfeatures.cli import main

raise SystemExit(main())
